"""Run configuration: defaults per dataset, loading `path[:arg]` config files,
`--config.FIELD=VALUE` overrides, and validation before anything compiles.

The defaults live in the library (not only in `configs/`) so that the `demo`
command works from an installed package.
"""

import importlib.util
import json
import os
from pathlib import Path

from etils import epath

import jax
import jax.numpy as jnp
import ml_collections

from jaxinv import adversarial, conditioning, data, paths
from jaxinv.cpu import fast_conv
from jaxinv.models import classifiers, generator

# Per dataset: classifier architecture and training length that reach the
# accuracies in the README's results table, measured on 2 CPU cores.
_DATASET_DEFAULTS = {
    "digits": dict(model="cnn", epochs=20, inversion_steps=1500),
    "mnist": dict(model="cnn", epochs=3, inversion_steps=1500),
    "fashion_mnist": dict(model="cnn", epochs=10, inversion_steps=1500),
    "svhn_cropped": dict(model="resnet", epochs=10, inversion_steps=3000),
    "cifar10": dict(model="resnet", epochs=30, inversion_steps=3000),
}
# A `folder:PATH` dataset (jaxinv.data): any image size, so the ResNet (global pooling).
_FOLDER_DEFAULTS = dict(model="resnet", epochs=10, inversion_steps=3000)


def _defaults_for(dataset) -> dict | None:
  if data.folder_path(dataset) is not None:
    return _FOLDER_DEFAULTS
  return _DATASET_DEFAULTS.get(dataset) if isinstance(dataset, str) else None


def default_config(dataset: str = "digits", variant: str | None = None) -> ml_collections.ConfigDict:
  """The full config for `dataset`; `variant="tiny"` shrinks everything for tests."""
  d = _defaults_for(dataset)
  if d is None:
    raise ValueError(f"Unknown dataset {dataset!r}; choose one of {sorted(_DATASET_DEFAULTS)} "
                     f"or {data.FOLDER_PREFIX}PATH.")
  if variant not in (None, "", "tiny"):
    raise ValueError(f"Unknown config variant {variant!r}; the only variant is 'tiny'.")
  tiny = variant == "tiny"
  c = ml_collections.ConfigDict()
  c.dataset = dataset
  c.seed = 0
  c.data_dir = ""  # empty: $JAXINV_DATA_DIR, else download through TFDS
  c.num_devices = 0  # 0: every visible device (of every process)
  c.distributed = False  # multi-process run: see jaxinv/distributed.py (or JAXINV_DISTRIBUTED=1)
  c.init_from = ""  # inversion: the classifier run's workdir
  # Inversion of your own classifier instead: "package.module:factory", a function with no
  # arguments returning a jaxinv.Classifier (jaxinv.from_linen / from_function / from_nnx).
  # `dataset` still names the images' shape, classes and the real test images.
  c.classifier_fn = ""
  # The models' compute dtype (COMPUTE_DTYPES): "bfloat16" or "float16" (GPU only) for mixed
  # precision; parameters, optimizer state, losses and metrics stay float32 either way.
  c.compute_dtype = "float32"
  c.max_train_examples = 512 if tiny else 0  # 0: the whole split
  # The classifier run's test accuracy on the test split's first N images (0: all of it);
  # tiny runs check plumbing, and scoring 10,000 test images was most of their time.
  c.max_test_examples = 1000 if tiny else 0
  # Which max_train_examples images: "first" (the split's first N) or "stratified" (N/K per
  # class, drawn with subset_seed); the classifier run saves the indices (train_indices.npy).
  c.subset_selection = "first"
  c.subset_seed = 0

  c.classifier = ml_collections.ConfigDict()
  c.classifier.model = d["model"]
  c.classifier.dropout_rate = 0.25
  c.classifier.epochs = 1 if tiny else d["epochs"]
  c.classifier.batch_size = 64 if tiny else 128
  c.classifier.learning_rate = 2e-3
  c.classifier.weight_decay = 1e-4
  # Adam's eps is the gradient size below which it stops normalising. At the
  # usual 1e-8, rounding noise in near-zero gradients (which differs with the
  # device count's reduction order) becomes steps of order lr; 1e-6 keeps runs on
  # 1 and N devices within 1e-5 of each other and does not change training.
  c.classifier.adam_eps = 1e-6
  c.classifier.log_every = 10 if tiny else 100
  c.classifier.steps = 0  # > 0: train this many steps instead of `epochs` (small subsets)
  c.classifier.mlp_batch_norm = False  # batch norm after each hidden dense layer of the MLP
  # Training recipe options (the airbench-style CIFAR-10 config turns them on; off = the
  # plain step): label smoothing s (targets (1 − s)·one-hot + s/K); random left–right
  # flips and shifts of up to `translate` pixels (reflection-padded) of training images;
  # an EMA of the weights with this decay, whose average the finished run keeps (0: none);
  # test predictions from the summed logits of each image and its mirror.
  c.classifier.label_smoothing = 0.0
  c.classifier.flip = False
  c.classifier.translate = 0
  # > 0: Gaussian noise of a std drawn from [0, noise_std] per training image (pixels in [-1, 1]).
  c.classifier.noise_std = 0.0
  # Adversarial (PGD) training (jaxinv.adversarial): 0 off; else the ball's radius in [-1, 1]
  # pixel units (L∞ 0.6 = 0.3 of a [0, 1] image), the attack's steps and step size (0: 2.5·ε/steps)
  # and the ball: "linf" or "l2" (the radius is then the L2 norm of the whole perturbation).
  c.classifier.adversarial_epsilon = 0.0
  c.classifier.adversarial_norm = "linf"
  c.classifier.adversarial_steps = 7
  c.classifier.adversarial_step_size = 0.0
  c.classifier.ema_decay = 0.0
  c.classifier.test_flips = False
  c.classifier.test_translate = 0  # > 0: also average over two shifted copies at test time
  # "adamw" (cosine decay) or "nesterov" (airbench's SGD recipe: triangle schedule, momentum,
  # batch-norm biases at bias_lr_scale × the rate, the whitening bias trained for the first
  # whiten_bias_fraction of the steps); learning_rate and weight_decay mean each one's own.
  c.classifier.optimizer = "adamw"
  c.classifier.momentum = 0.85
  c.classifier.bias_lr_scale = 64.0
  c.classifier.whiten_bias_fraction = 0.3
  # > 0: lookahead every this many steps (jaxinv.lookahead); the run keeps the slow weights.
  c.classifier.lookahead_period = 0
  c.classifier.widths = ()  # model "airbench": channels of its three blocks (empty: 64, 256, 256)
  # How the CNN's convolutions are computed (jaxinv.cpu.fast_conv): "auto" = Flax's own, or
  # with jaxinv.cpu switched on (the jaxinv command on a CPU) the kernel gradient in batch
  # blocks on one CPU device. Same function.
  c.classifier.conv_impl = "auto"

  c.generator = ml_collections.ConfigDict()
  c.generator.mode = "vector_matrix"
  c.generator.hot_pattern = "cross"
  # The conditioning vectors' softmax temperature, p = softmax(v / T): 1 is the paper's;
  # below 1 each vector is sharper around its label, its other entries still random.
  c.generator.temperature = 1.0
  c.generator.dropout_rate = 0.2
  c.generator.dropout_at_sampling = True  # sample as trained (see jaxinv.sampling)
  # > 0: `evaluate`, `sample` and `figure` keep only images every classifier_ensemble member
  # gives their label probability >= this (rejection sampling, jaxinv.acceptance); training
  # and the inversion's own end-of-run summary use every draw.
  c.generator.accept_threshold = 0.0
  c.generator.width = 8 if tiny else 32
  c.generator.latent_dim = 100
  c.generator.embed_dim = 100
  c.generator.upsample = "resize"
  # > 0: a fixed Gaussian blur of this std (pixels) before the output tanh, so the generator
  # cannot draw single-pixel texture (jaxinv.models.generator).
  c.generator.blur = 0.0
  # How the generator's convolutions are computed (jaxinv.cpu.fast_conv): "auto" = Flax's
  # own, or with jaxinv.cpu switched on and a CPU backend "im2col" for transposed ones and
  # batch-blocked kernel gradients for 3×3 ones. Same function either way.
  c.generator.conv_impl = "auto"

  c.inversion = ml_collections.ConfigDict()
  c.inversion.steps = 20 if tiny else d["inversion_steps"]
  c.inversion.batch_size = 32 if tiny else 64
  c.inversion.learning_rate = 2e-3
  c.inversion.adam_eps = 1e-6  # see classifier.adam_eps
  # Weights are unpublished [ours]. With soft p the KL term alone pulls q towards
  # an ambiguous distribution; a heavier CE term (β=4) keeps argmax q = y
  # (measured on digits: 98.9 % vs 84.8 % target accuracy after 400/300 steps).
  c.inversion.alpha = 1.0  # KL(p ‖ q)
  c.inversion.beta = 4.0  # CE(q, y)
  c.inversion.gamma = 1.0  # mean pairwise cosine of features
  c.inversion.delta = 1.0  # Gram orthogonality of features
  # The KL term compares p with softmax(logits / kl_temperature): 1 is the paper's; above 1
  # an image can be confidently its label while its other logits still follow p.
  c.inversion.kl_temperature = 1.0
  c.inversion.feature_layer = "penultimate"
  c.inversion.log_every = 5 if tiny else 50
  c.inversion.eval_samples_per_class = 16 if tiny else 500

  # Extra inversion terms (weights; 0 leaves a term out of the step). Image priors,
  # jaxinv.priors: squared-difference total variation, mean squared pixel, hinge
  # outside [-1, 1] (zero for the tanh generator; for pixel optimisation).
  c.priors = ml_collections.ConfigDict()
  c.priors.total_variation = 0.0
  c.priors.l2 = 0.0
  c.priors.pixel_range = 0.0
  c.priors.ink = 0.0  # hinge below 10 % mean ink (near-blank images; jaxinv.priors.ink)
  c.priors.sparsity = 0.0  # mean ink, an L1 pull of every pixel towards the background (−1)
  c.priors.border = 0.0  # mean ink within 4 pixels of the edge (objects centred in a frame)
  c.priors.saturation = 0.0  # mean 1 − x²: grey pixels cost (strokes solid, background clean)
  # Diversity beyond the feature cosine (jaxinv.diversity): pixel cosine of same-label
  # images, and mode seeking (images that move with their latents).
  c.priors.pixel_cosine = 0.0
  c.priors.mode_seeking = 0.0
  # The feature cosine over same-label pairs only (jaxinv.diversity.class_cosine).
  c.priors.class_cosine = 0.0
  # The other classes' logits kept `margin_size` below the target's (jaxinv.class_evidence).
  c.priors.margin = 0.0
  c.priors.margin_size = 5.0
  # DeepInversion's prior (jaxinv.feature_stats): batch mean/var of each batch-norm
  # layer's input pulled towards the classifier's running statistics.
  c.priors.feature_statistics = 0.0
  # Multi-classifier inversion (jaxinv.classifier_ensemble): α·KL + β·CE of the
  # classifiers in classifier_ensemble.workdirs, averaged over them.
  c.priors.classifier_ensemble = 0.0
  # The within-class feature cosine in those classifiers' features (mean over them).
  c.priors.ensemble_class_cosine = 0.0
  c.classifier_ensemble = ml_collections.ConfigDict()
  c.classifier_ensemble.workdirs = ()  # `jaxinv train-classifier` runs on the dataset, any architecture
  c.classifier_ensemble.impl = "auto"  # as ensemble.impl
  # Relative weight of each workdir (in order) in the α·KL + β·CE average and in the
  # within-class cosine average; () weighs every member equally.
  c.classifier_ensemble.weights = ()
  c.classifier_ensemble.cosine_weights = ()
  # Random small transforms before the classifier (jaxinv.transforms): shift of up to
  # `jitter` pixels, scale in [1 − scale, 1 + scale], left–right flips (not for digits).
  c.robustness = ml_collections.ConfigDict()
  c.robustness.jitter = 0.0
  c.robustness.scale = 0.0
  c.robustness.flip = False
  # > 0: Gaussian noise of a std drawn from [0, noise] per image added to what the classifier sees.
  c.robustness.noise = 0.0
  # The DeepInversion pixel baseline (`jaxinv pixel-invert`, jaxinv.pixel_inversion):
  # pixels optimised directly with the inversion loss and the priors above.
  c.pixel = ml_collections.ConfigDict()
  c.pixel.images_per_class = 2 if tiny else 100
  c.pixel.batch_size = 10 if tiny else 100  # images optimised together (batch statistics)
  c.pixel.steps = 5 if tiny else 300
  c.pixel.learning_rate = 0.05
  c.pixel.init_std = 0.2  # [ours] pixels start as N(0, init_std²)

  # Training-like data reconstruction (`jaxinv reconstruct`, method notes §7, jaxinv.reconstruction):
  # weights of the extra terms (0 leaves a term out) and the audit's settings.
  c.reconstruction = ml_collections.ConfigDict()
  c.reconstruction.kl_perturbed = 0.0  # α′: KL(p ‖ q) on x + ε
  c.reconstruction.ce_perturbed = 0.0  # β′: CE(q, y) on x + ε
  c.reconstruction.perturbation = "sign"  # ε: "sign" (±size per pixel) or "gaussian" (N(0, size²))
  c.reconstruction.perturbation_size = 0.05  # in [-1, 1] pixel units
  c.reconstruction.weight_gradient_norm = 0.0  # η₃: ‖∇_θ CE(C_θ(x), y)‖₂
  # Examples of each batch the gradient-norm term uses (0: all): per-example gradients of
  # gradients cost ~4× a plain CNN step for 64 examples on 2 CPU cores (measured).
  c.reconstruction.gradient_norm_examples = 0
  c.reconstruction.samples_per_class = 2 if tiny else 20  # reconstructions audited per class
  c.reconstruction.ssim_threshold = 0.4  # a training image counts as recovered at SSIM ≥ this
  # Per class with more training images than this, each reconstruction is compared with
  # only its nearest ones in pixel distance (bounds the SSIM work on 60 000 images); 0: all.
  c.reconstruction.ssim_candidates = 1000
  c.reconstruction.plain_control = True  # also train a generator without reconstruction terms

  # An ensemble: one generator per seed, trained together in one vmapped program.
  # Each other field is empty (every member takes the inversion/generator value) or
  # lists one value per member. Empty `seeds`: a single generator.
  c.ensemble = ml_collections.ConfigDict()
  c.ensemble.seeds = ()
  c.ensemble.alpha = ()
  c.ensemble.beta = ()
  c.ensemble.gamma = ()
  c.ensemble.delta = ()
  c.ensemble.dropout_rate = ()
  # How members share the program: "vmap" batches them (vmapped convolutions, fast
  # on GPU/TPU); "unrolled" traces them one after another in the same program (on
  # XLA:CPU vmapped convolutions and their gradients are 8–30× slower than unbatched
  # ones, measured); "auto" picks unrolled on CPU, vmap elsewhere.
  c.ensemble.impl = "auto"

  # OOD detection with a garbage class fed by inversion (`jaxinv ood train`, method notes §6).
  # Round r trains the K+1-class classifier on the data plus all garbage so far
  # (epochs_per_round epochs), trains the generator against it, inverts all K+1 classes
  # and adds the images to garbage; after the last round the classifier trains once more.
  c.ood = ml_collections.ConfigDict()
  c.ood.rounds = 1 if tiny else 8  # 8 beat 4 on both datasets (docs/ood.md)
  c.ood.noise_images = 64 if tiny else 6000  # Gaussian-noise images the garbage class starts with
  c.ood.noise_std = 0.5  # [ours] N(0, std²) pixels clipped to [-1, 1]
  # [ours] Empty: white noise. Else blur sigmas in pixels (0 = white): the noise images are
  # split evenly across them and each rescaled to std noise_std (jaxinv.ood.smooth_noise_images).
  c.ood.noise_blur = ()
  # [ours] Dead-leaves shape images (jaxinv.garbage_sources.shape_images) added to the seed:
  # flat regions and edges, which white noise lacks. 0: the paper's noise-only seed.
  c.ood.shape_images = 64 if tiny else 6000
  # [ours] Random-stroke images (jaxinv.garbage_sources.stroke_images) added to the seed: thin
  # curves, which neither noise nor shapes have. Off by default; configs/ood_fashion_mnist.py
  # turns it on (its OOD partner, MNIST, is strokes; docs/ood.md).
  c.ood.stroke_images = 0
  # [ours] Training images shifted out of distribution (jaxinv.garbage_sources.shifted_images:
  # rotated ±90°, tiles shuffled, colour channels permuted; one transform each, in turn) added
  # to the seed: near-OOD photographs rather than noise. 0: none (docs/ood.md).
  c.ood.shifted_images = 0
  c.ood.shifted_transforms = ("rotate90", "jigsaw", "permute_channels")
  # The first round whose classifier trains on the shifted images. Rounds before it keep the
  # garbage class far from photographs, which the far OOD sets need (docs/ood.md).
  c.ood.shifted_from_round = 0
  # [ours] Per round and per K+1 class, shape images moved by pixel-space inversion until the
  # round's classifier assigns them the class (jaxinv.garbage_sources.hard_negatives), added
  # to garbage beside the generator's images. 0: generator images only (the paper).
  c.ood.pixel_inversions_per_class = 4 if tiny else 500
  c.ood.pixel_inversion_steps = 3 if tiny else 30
  c.ood.pixel_inversion_lr = 0.05
  # [ours] What the hard negatives start from: "shapes" and/or "strokes" (the images of
  # garbage_sources), split evenly, interleaved so every class gets each kind.
  # configs/ood_fashion_mnist.py adds strokes (docs/ood.md).
  c.ood.pixel_inversion_starts = ("shapes",)
  c.ood.samples_per_class = 4 if tiny else 500  # inverted images per class (K+1 classes) per round
  c.ood.epochs_per_round = 1
  c.ood.inversion_steps = 4 if tiny else 300  # generator steps per round (warm-started)
  # Class weights of the cross-entropy: "balanced" = N / ((K+1)·n_k) so the growing garbage
  # class does not swamp the K real ones; "uniform" = 1. The garbage weight is then
  # multiplied by garbage_weight.
  c.ood.class_weighting = "balanced"
  c.ood.garbage_weight = 1.0
  # [ours] The detector averages the probabilities of the last detector_rounds classifiers of
  # the loop (the final one and those of the rounds before it): a snapshot ensemble that costs
  # no training and evens out the round-to-round swings of one classifier (docs/ood.md).
  c.ood.detector_rounds = 2 if tiny else 3
  # [ours] Weight of the plain baseline classifier's free energy in the `garbage_energy`
  # score (jaxinv.ood.garbage_energy_score; 0: the garbage score alone). 1.25 was chosen with
  # CIFAR-10 in-distribution (docs/ood.md); not measured on the MNIST family.
  c.ood.energy_weight = 1.25
  c.ood.odin_temperature = 1000.0  # ODIN's usual T
  c.ood.odin_epsilon = 0.0028  # ODIN's 0.0014 on [0, 1] inputs, doubled for our [-1, 1] range
  c.ood.eval_max_images = 64 if tiny else 10000  # per evaluation set (ID test and each OOD set)

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every = 5 if tiny else 500  # steps between saves (and one at the end)
  c.checkpoint.keep = 3  # newest checkpoints kept
  # An unreadable or foreign newest checkpoint stops the run with an error; true
  # moves it aside (never deletes it) and resumes from the newest intact one.
  c.checkpoint.fallback_to_intact = False
  return c


# Fields a resumed run may change without changing what it computes.
RESUME_MAY_CHANGE = ("checkpoint.keep", "checkpoint.fallback_to_intact", "checkpoint.every",
                     "classifier.log_every", "inversion.log_every", "data_dir", "num_devices",
                     "distributed",
                     "inversion.eval_samples_per_class",
                     # evaluation only, and more rounds extend a run without changing earlier ones
                     "ood.rounds", "ood.detector_rounds", "ood.energy_weight", "ood.odin_temperature", "ood.odin_epsilon",
                     "ood.eval_max_images", "reconstruction.samples_per_class",
                     "reconstruction.ssim_threshold", "reconstruction.plain_control",
                     "reconstruction.ssim_candidates")


def differences(saved: ml_collections.ConfigDict, new: ml_collections.ConfigDict,
                ignore=()) -> list[str]:
  """`["field: saved A, now B", …]` over every leaf of either config."""
  a, b = _flatten(saved.to_dict()), _flatten(new.to_dict())
  return [f"{k}: saved {a.get(k, '(absent)')!r}, now {b.get(k, '(absent)')!r}"
          for k in sorted(set(a) | set(b)) if k not in ignore and _norm(a.get(k)) != _norm(b.get(k))]


def _flatten(tree: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _norm(value):
  return list(value) if isinstance(value, tuple) else value


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py[:arg]` by calling its `get_config(arg)`."""
  path, _, arg = spec.partition(":")
  if not Path(path).is_file():
    raise FileNotFoundError(f"Config file {path!r} not found (expected e.g. configs/mnist.py[:tiny]).")
  module_spec = importlib.util.spec_from_file_location(f"jaxinv_config_{Path(path).stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"Config file {path!r} defines no get_config(arg).")
  return module.get_config(arg or None)


def _parse_value(text: str, current):
  if isinstance(current, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    raise ValueError(f"expected true/false, got {text!r}")
  if isinstance(current, int):
    return int(text)
  if isinstance(current, float):
    return float(text)
  if isinstance(current, (tuple, list)):
    return type(current)(json.loads(text))
  return text


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str]) -> None:
  """Sets dotted `FIELD=VALUE` pairs, parsing VALUE with the field's current type."""
  for dotted, text in overrides.items():
    *parents, leaf = dotted.split(".")
    node = config
    for name in parents:
      if name not in node or not isinstance(node[name], ml_collections.ConfigDict):
        raise KeyError(f"Unknown config field {dotted!r}: {name!r} is not a section "
                       f"(sections here: {sorted(k for k, v in node.items() if isinstance(v, ml_collections.ConfigDict))}).")
      node = node[name]
    if leaf not in node:
      raise KeyError(f"Unknown config field {dotted!r}; fields here: {sorted(node.keys())}.")
    try:
      value = _parse_value(text, node[leaf])
    except ValueError as err:
      raise ValueError(f"Bad value for config field {dotted!r}: {err}.") from None
    node[leaf] = value


# What ood.pixel_inversion_starts may name (jaxinv.runs.ood.pixel_inversions draws them).
PIXEL_INVERSION_STARTS = ("shapes", "strokes")
# What ood.shifted_transforms may name (jaxinv.garbage_sources.SHIFT_TRANSFORMS).
SHIFT_TRANSFORMS = ("rotate90", "jigsaw", "permute_channels")


COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def compute_dtype(config):
  """The models' `dtype` field for `config.compute_dtype`: None for float32 (Flax's default,
  the inputs' dtype), else the JAX dtype."""
  return None if config.compute_dtype == "float32" else jnp.dtype(config.compute_dtype)


def _check_compute_dtype(value, need) -> None:
  need(value in COMPUTE_DTYPES, "compute_dtype", f"one of {COMPUTE_DTYPES}")
  # float16 needs loss scaling on hardware without fast float16 (CPUs, TPUs): not offered there.
  if value == "float16" and jax.default_backend() != "gpu":
    need(False, "compute_dtype", f"float16 runs on GPUs only (this backend: {jax.default_backend()}); "
                                 "use bfloat16 or float32")


def validate(config: ml_collections.ConfigDict) -> None:
  """Named errors for values no run could use; called before any compile."""
  errors = []
  if _defaults_for(config.get("dataset")) is None:
    raise ValueError(f"Invalid config:\n  dataset={config.get('dataset')!r}: one of "
                     f"{sorted(_DATASET_DEFAULTS)}, or {data.FOLDER_PREFIX}PATH for an image "
                     f"folder (split/class/image) or a .tar/.tar.gz of one")
  reference = _flatten(default_config(config.dataset).to_dict())
  given = _flatten(config.to_dict())
  for field in sorted(set(given) - set(reference)):
    errors.append(f"{field}: unknown field (fields are those of default_config; check the spelling)")
  for field in sorted(set(reference) - set(given)):
    errors.append(f"{field}: missing (start the config from jaxinv.config.default_config)")
  for field in sorted(set(given) & set(reference)):
    want, value = type(reference[field]), given[field]
    ok = (isinstance(value, want) and not (want is int and isinstance(value, bool))
          or want is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
      errors.append(f"{field}={value!r}: must be of type {want.__name__}")
  if errors:  # the range checks below assume the right types
    raise ValueError("Invalid config:\n  " + "\n  ".join(errors))

  def need(ok: bool, field: str, allowed: str):
    if not ok:
      errors.append(f"{field}={config_get(config, field)!r}: {allowed}")

  need(data.spec_problem(config.dataset) is None, "dataset", str(data.spec_problem(config.dataset)))
  need(config.classifier.model in classifiers.CLASSIFIERS, "classifier.model",
       f"one of {sorted(classifiers.CLASSIFIERS)}")
  need(config.generator.mode in conditioning.MODES, "generator.mode", f"one of {conditioning.MODES}")
  need(config.generator.hot_pattern in conditioning.HOT_PATTERNS, "generator.hot_pattern",
       f"one of {conditioning.HOT_PATTERNS}")
  need(config.generator.upsample in generator.UPSAMPLE_KINDS, "generator.upsample",
       f"one of {generator.UPSAMPLE_KINDS}")
  for field in ("generator.conv_impl", "classifier.conv_impl"):
    need(config_get(config, field) in fast_conv.IMPLS, field, f"one of {fast_conv.IMPLS}")
  for field in ("classifier.dropout_rate", "generator.dropout_rate"):
    need(0.0 <= config_get(config, field) < 1.0, field, "a rate in [0, 1)")
  need(0.0 <= config.generator.accept_threshold < 1.0, "generator.accept_threshold",
       "a probability in [0, 1) (0: keep every image)")
  need(not config.generator.accept_threshold or len(config.classifier_ensemble.workdirs) > 0,
       "classifier_ensemble.workdirs", "at least one classifier workdir when "
       "generator.accept_threshold > 0: the classifiers that accept or reject the images")
  for field in ("classifier.epochs", "classifier.batch_size", "inversion.steps",
                "inversion.batch_size", "generator.width", "generator.latent_dim",
                "generator.embed_dim", "classifier.log_every", "inversion.log_every",
                "inversion.eval_samples_per_class", "checkpoint.every", "checkpoint.keep"):
    need(isinstance(config_get(config, field), int) and config_get(config, field) > 0, field,
         "a positive integer")
  need(config.inversion.batch_size >= 2, "inversion.batch_size",
       "at least 2 (the pairwise losses need pairs)")
  for field in ("classifier.learning_rate", "inversion.learning_rate", "classifier.adam_eps",
                "inversion.adam_eps", "generator.temperature", "inversion.kl_temperature"):
    need(config_get(config, field) > 0, field, "a positive float")
  for field in ("inversion.alpha", "inversion.beta", "inversion.gamma", "inversion.delta",
                "classifier.weight_decay", "priors.total_variation", "priors.l2", "priors.pixel_range",
                "priors.ink", "priors.pixel_cosine", "priors.mode_seeking", "priors.class_cosine",
                "priors.margin",
                "priors.margin_size",
                "reconstruction.kl_perturbed", "reconstruction.ce_perturbed",
                "reconstruction.weight_gradient_norm", "reconstruction.perturbation_size"):
    need(config_get(config, field) >= 0, field, "a non-negative float")
  _validate_faithful(config, need)
  need(config.num_devices >= 0, "num_devices", "0 (all devices) or a positive count")
  need(config.max_train_examples >= 0, "max_train_examples", "0 (all) or a positive count")
  need(config.max_test_examples >= 0, "max_test_examples", "0 (all) or a positive count")
  need(config.seed >= 0, "seed", "a non-negative integer")
  _check_compute_dtype(config.compute_dtype, need)
  for folder in (config.data_dir, config.init_from, *config.classifier_ensemble.workdirs):
    if folder:
      paths.check_filesystem(folder)  # gs://... without its filesystem package: a clear error
  need(not config.data_dir or epath.Path(config.data_dir).is_dir(), "data_dir",
       "an existing folder with one subfolder per dataset, or empty")
  need(not config.init_from or (epath.Path(config.init_from) / "config.json").is_file(), "init_from",
       "the workdir of a finished `jaxinv train-classifier` run (with config.json), or empty")
  need(not config.classifier_fn or (":" in config.classifier_fn and not config.init_from),
       "classifier_fn", "'package.module:factory' or 'file.py:factory', and init_from left empty "
       "(one classifier)")
  need(config.inversion.feature_layer != "", "inversion.feature_layer", "a feature name, e.g. 'penultimate'")
  need(config.ensemble.impl in ("auto", "vmap", "unrolled"), "ensemble.impl",
       "one of ('auto', 'vmap', 'unrolled')")
  members = len(config.ensemble.seeds)
  need(all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in config.ensemble.seeds)
       and len(set(config.ensemble.seeds)) == members, "ensemble.seeds",
       "distinct non-negative integers, one per member (empty: a single generator)")
  for name in ("alpha", "beta", "gamma", "delta", "dropout_rate"):
    values = list(config.ensemble[name])
    need(not values or len(values) == members, f"ensemble.{name}",
         f"empty or one value per member ({members} seeds)")
    need(all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in values)
         and (name != "dropout_rate" or all(x < 1 for x in values)), f"ensemble.{name}",
         "non-negative numbers" + (" below 1" if name == "dropout_rate" else ""))
  for field in ("ood.rounds", "ood.noise_images", "ood.samples_per_class", "ood.epochs_per_round",
                "ood.inversion_steps", "ood.eval_max_images"):
    need(config_get(config, field) > 0, field, "a positive integer")
  for field in ("ood.shape_images", "ood.stroke_images", "ood.shifted_images",
                "ood.pixel_inversions_per_class"):
    value = config_get(config, field)
    need(isinstance(value, int) and not isinstance(value, bool) and value >= 0, field,
         "a non-negative integer (0 switches it off)")
  need(config.ood.pixel_inversion_steps > 0, "ood.pixel_inversion_steps", "a positive integer")
  need(1 <= config.ood.detector_rounds <= config.ood.rounds + 1, "ood.detector_rounds",
       f"1 to ood.rounds + 1 = {config.ood.rounds + 1} (the loop trains that many classifiers)")
  need(config.ood.pixel_inversion_lr > 0, "ood.pixel_inversion_lr", "a positive float")
  starts = tuple(config.ood.pixel_inversion_starts)
  need(len(starts) > 0 and len(set(starts)) == len(starts)
       and set(starts) <= set(PIXEL_INVERSION_STARTS), "ood.pixel_inversion_starts",
       f"a non-empty tuple of distinct names from {PIXEL_INVERSION_STARTS}")
  start = config.ood.shifted_from_round
  need(isinstance(start, int) and not isinstance(start, bool) and 0 <= start <= config.ood.rounds,
       "ood.shifted_from_round", f"an integer from 0 to ood.rounds = {config.ood.rounds} (the "
       "last round whose classifier can train on the shifted images)")
  shifts = tuple(config.ood.shifted_transforms)
  need(len(shifts) > 0 and len(set(shifts)) == len(shifts) and set(shifts) <= set(SHIFT_TRANSFORMS),
       "ood.shifted_transforms", f"a non-empty tuple of distinct names from {SHIFT_TRANSFORMS}")
  need(config.ood.class_weighting in ("balanced", "uniform"), "ood.class_weighting",
       "'balanced' or 'uniform'")
  for field in ("ood.noise_std", "ood.garbage_weight", "ood.odin_temperature"):
    need(config_get(config, field) > 0, field, "a positive float")
  need(all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
           for x in config.ood.noise_blur), "ood.noise_blur",
       "blur sigmas in pixels (non-negative numbers; 0 = white noise), or empty")
  need(isinstance(config.ood.energy_weight, (int, float)) and not isinstance(config.ood.energy_weight, bool)
       and config.ood.energy_weight >= 0, "ood.energy_weight", "a non-negative float (0: the garbage score alone)")
  need(config.ood.odin_epsilon >= 0, "ood.odin_epsilon", "a non-negative float (0: no perturbation)")
  need(config.classifier.steps >= 0, "classifier.steps", "0 (train for `epochs`) or a positive count")
  need(0.0 <= config.classifier.label_smoothing < 1.0, "classifier.label_smoothing", "a fraction in [0, 1)")
  need(config.classifier.adversarial_norm in adversarial.NORMS, "classifier.adversarial_norm",
       " or ".join(f'"{norm}"' for norm in adversarial.NORMS))
  epsilon = config.classifier.adversarial_epsilon
  need(epsilon >= 0.0 and (epsilon <= 2.0 or config.classifier.adversarial_norm == "l2"),
       "classifier.adversarial_epsilon",
       "0 (off), an L∞ radius in [-1, 1] pixel units of at most 2, or with adversarial_norm=l2 any "
       "non-negative L2 radius")
  need(config.classifier.adversarial_steps >= 1, "classifier.adversarial_steps", "a positive count")
  need(config.classifier.adversarial_step_size >= 0, "classifier.adversarial_step_size",
       "0 (2.5·ε/steps) or a positive step")
  need(0.0 <= config.classifier.ema_decay < 1.0, "classifier.ema_decay", "a decay in [0, 1) (0: no EMA)")
  need(config.classifier.translate >= 0, "classifier.translate", "a non-negative number of pixels")
  need(config.classifier.noise_std >= 0, "classifier.noise_std", "0 (off) or a positive std")
  need(config.classifier.test_translate >= 0, "classifier.test_translate", "a non-negative number of pixels")
  need(config.classifier.optimizer in ("adamw", "nesterov"), "classifier.optimizer", "'adamw' or 'nesterov'")
  need(0.0 <= config.classifier.momentum < 1.0, "classifier.momentum", "a momentum in [0, 1)")
  need(config.classifier.bias_lr_scale > 0, "classifier.bias_lr_scale", "a positive factor")
  need(0.0 <= config.classifier.whiten_bias_fraction <= 1.0, "classifier.whiten_bias_fraction",
       "a fraction of the steps in [0, 1]")
  need(config.classifier.lookahead_period >= 0, "classifier.lookahead_period",
       "0 (off) or a positive number of steps")
  need(not (config.classifier.lookahead_period and config.classifier.ema_decay), "classifier.ema_decay",
       "0 when classifier.lookahead_period is set (the run keeps one average: the EMA or the lookahead's)")
  widths = tuple(config.classifier.widths)
  need(all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths)
       and len(widths) in (0, 3), "classifier.widths", "empty or three positive integers")
  need(not widths or config.classifier.model == "airbench", "classifier.widths",
       "empty unless classifier.model='airbench' (the only model that reads it)")
  need(config.subset_seed >= 0, "subset_seed", "a non-negative integer")
  need(config.subset_selection in ("first", "stratified"), "subset_selection",
       "'first' (the first max_train_examples images) or 'stratified' (seeded, equal per class)")
  need(config.reconstruction.perturbation in ("sign", "gaussian"), "reconstruction.perturbation",
       "'sign' (random ±size per pixel) or 'gaussian' (N(0, size²) per pixel)")
  need(config.reconstruction.samples_per_class > 0, "reconstruction.samples_per_class",
       "a positive integer")
  need(config.reconstruction.gradient_norm_examples >= 0, "reconstruction.gradient_norm_examples",
       "0 (the whole batch) or a positive count")
  need(config.reconstruction.ssim_candidates >= 0, "reconstruction.ssim_candidates",
       "0 (compare with every same-class training image) or a positive count")
  need(-1.0 <= config.reconstruction.ssim_threshold <= 1.0, "reconstruction.ssim_threshold",
       "an SSIM in [-1, 1] (0.4 in the literature)")
  if errors:
    raise ValueError("Invalid config:\n  " + "\n  ".join(errors))


def _validate_faithful(config, need) -> None:
  """The priors, robustness, classifier-ensemble and pixel-baseline fields."""
  for field in ("priors.feature_statistics", "priors.classifier_ensemble",
                "priors.ensemble_class_cosine", "robustness.jitter",
                "robustness.scale", "robustness.noise", "priors.sparsity", "priors.border",
                "priors.saturation", "generator.blur"):
    need(config_get(config, field) >= 0, field, "a non-negative float")
  need(config.robustness.scale < 1, "robustness.scale", "a fraction below 1 (0.1: ±10 %)")
  need(isinstance(config.robustness.flip, bool), "robustness.flip", "true or false")
  need(config.classifier_ensemble.impl in ("auto", "vmap", "unrolled"), "classifier_ensemble.impl",
       "one of ('auto', 'vmap', 'unrolled')")
  need(not (config.priors.classifier_ensemble or config.priors.ensemble_class_cosine)
       or len(config.classifier_ensemble.workdirs) > 0, "classifier_ensemble.workdirs",
       "at least one classifier workdir when priors.classifier_ensemble or "
       "priors.ensemble_class_cosine > 0: `jaxinv train-classifier` runs on the dataset "
       "(for configs/faithful.py's robust_prior, one trained with --config.classifier.adversarial_epsilon)")
  for field, term in (("weights", "priors.classifier_ensemble"),
                      ("cosine_weights", "priors.ensemble_class_cosine")):
    member_weights = tuple(config.classifier_ensemble[field])
    need(not member_weights or len(member_weights) == len(config.classifier_ensemble.workdirs),
         f"classifier_ensemble.{field}", "one relative weight per classifier_ensemble.workdirs entry, "
         "or () for equal weights")
    need(all(isinstance(w, (int, float)) and w >= 0 for w in member_weights)
         and (not member_weights or sum(member_weights) > 0 or not config_get(config, term)),
         f"classifier_ensemble.{field}", f"non-negative numbers, not all 0 while {term} > 0")
  for workdir in config.classifier_ensemble.workdirs:
    need((epath.Path(workdir) / "config.json").is_file(), "classifier_ensemble.workdirs",
         f"workdirs of finished `jaxinv train-classifier` runs ({workdir} has no config.json)")
  for field in ("pixel.images_per_class", "pixel.batch_size", "pixel.steps"):
    need(isinstance(config_get(config, field), int) and config_get(config, field) > 0, field,
         "a positive integer")
  need(config.pixel.batch_size >= 2, "pixel.batch_size", "at least 2 (batch statistics, pairwise losses)")
  for field in ("pixel.learning_rate", "pixel.init_std"):
    need(config_get(config, field) > 0, field, "a positive float")


def with_absolute_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy whose `init_from`/`data_dir` (and a `classifier_fn` file) are absolute, so a saved config.json and the
  checkpoint records it names stay valid from any working directory."""
  config = ml_collections.ConfigDict(config.to_dict())
  for field in ("init_from", "data_dir"):
    if config[field]:
      config[field] = paths.absolute(config[field])  # gs://... stays as it is
  module, _, factory = config.classifier_fn.rpartition(":")
  if module.endswith(".py"):  # a file: absolute too; a module name stays as it is
    config.classifier_fn = f"{paths.absolute(module)}:{factory}"
  if data.folder_path(config.dataset) is not None:
    config.dataset = data.FOLDER_PREFIX + paths.absolute(data.folder_path(config.dataset))
  config.classifier_ensemble.workdirs = tuple(paths.absolute(w) for w in config.classifier_ensemble.workdirs)
  return config


def config_get(config, dotted: str):
  node = config
  for name in dotted.split("."):
    node = node[name]
  return node


def save_json(config: ml_collections.ConfigDict, path: os.PathLike) -> None:
  epath.Path(path).write_text(config.to_json(indent=2, sort_keys=True) + "\n")


# Fields added with a default that changes what a run computes: a saved config without
# them is of a run made before they existed, which computed as these values do.
ABSENT_FROM_SAVED = {"ood.shape_images": 0, "ood.pixel_inversions_per_class": 0,
                     "ood.detector_rounds": 1}


def load_json(path: os.PathLike) -> ml_collections.ConfigDict:
  """A saved config laid over the current defaults of its dataset, so runs saved
  before a field was added still load (the new field takes its default)."""
  stored = json.loads(epath.Path(path).read_text())
  config = default_config(stored.get("dataset", "digits"))
  for dotted, value in ABSENT_FROM_SAVED.items():
    *parents, name = dotted.split(".")
    node = stored
    for parent in parents:
      node = node.get(parent) if isinstance(node, dict) else None
    if isinstance(node, dict) and name not in node:
      section = config_get(config, ".".join(parents))
      with section.unlocked():
        section[name] = value
  _merge(config, stored)
  return config


def _merge(config: ml_collections.ConfigDict, values: dict) -> None:
  for key, value in values.items():
    if isinstance(value, dict) and isinstance(config.get(key), ml_collections.ConfigDict):
      _merge(config[key], value)
    else:
      with config.unlocked():
        config[key] = tuple(value) if isinstance(value, list) else value
