"""OOD detection with a garbage class fed by inversion (method notes §6, arXiv 2505.23448).

    run(config, workdir)        the train–invert–exclude loop, plus the plain K-class baseline
    evaluate(workdir, sets)     every score × every OOD set × every metric
    score(workdir, images)      every score of any images

Workdir layout (every phase resumes from its own checkpoints; rerun the same command):

    config.json, summary.json
    baseline/                   a `jaxinv train-classifier` run: the plain K-class classifier
                                (same architecture and data) that MSP, ODIN and energy use
    rounds/000/classifier/      K+1-class classifier of round 0 (checkpoints/, metrics.jsonl)
    rounds/000/generator/       generator trained against it (checkpoints/, metrics.jsonl)
    rounds/000/garbage.npz      its inverted images of all K+1 classes, added to garbage
                                (`source`: 0 = generator, 1 = pixel-space inversion)
    rounds/000/summary.json     round figures (test accuracy, how the inverted images score)
    …
    rounds/RRR/classifier/      R = ood.rounds: the final classifier, trained on everything

Round r trains the classifier (warm-started from round r−1, fresh optimizer) for
`ood.epochs_per_round` epochs on the training data plus the seed (Gaussian noise and
[ours] dead-leaves shapes and random strokes) and the garbage of rounds < r, with class-weighted
cross-entropy; then trains the generator (warm-started likewise) for `ood.inversion_steps`
steps against that classifier, samples `ood.samples_per_class` images of each of the K+1
classes and writes them to garbage, with [ours] `ood.pixel_inversions_per_class` hard
negatives per class (shape images inverted in pixel space, `jaxinv.garbage_sources`).
Every random draw is keyed by (seed, round, step), so a resumed run draws what an
uninterrupted one would.
"""

import dataclasses
import functools
import json
import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
from etils.epath import Path

from jaxinv import (checkpoint, data, distributed, garbage_sources, loop, metrics, ood, paths,
                    plotting, rng, sampling, sharding, steps)
from jaxinv import config as config_lib
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import inversion as inversion_run
from jaxinv.runs import options
from jaxinv.runs.workdir import Workdir, batched, read_config

EVAL_BATCH = 500
PRODUCED_BY = "jaxinv ood train"
GAUSSIAN_SET_STD = 1.0  # the "gaussian" OOD set; the garbage seed uses ood.noise_std (0.5)
KEY_NAMES = ("classifier_init", "classifier_dropout", "generator_init", "conditioning",
             "generator_dropout", "sample")
# Per in-distribution dataset: the other one of the pair, the grayscale CIFAR-10 images, synthetic sets.
DEFAULT_SETS = {"mnist": ("fashion_mnist", "cifar10", *ood.SYNTHETIC_SETS),
                "fashion_mnist": ("mnist", "cifar10", *ood.SYNTHETIC_SETS),
                "digits": ("fashion_mnist", "cifar10", *ood.SYNTHETIC_SETS),
                "svhn_cropped": ("cifar10", "mnist", *ood.SYNTHETIC_SETS),
                "cifar10": ("svhn_cropped", "mnist", "fashion_mnist", *ood.SYNTHETIC_SETS)}
# Share of each OOD test set the paper sends to garbage (method notes §6); in-distribution test accuracy.
PAPER_DETECTION = {("mnist", "fashion_mnist"): 0.895, ("mnist", "svhn_cropped"): 0.991,
                   ("mnist", "cifar10"): 0.994, ("fashion_mnist", "mnist"): 0.852,
                   ("fashion_mnist", "svhn_cropped"): 0.963, ("fashion_mnist", "cifar10"): 0.957}
PAPER_ACCURACY = {"mnist": 0.991, "fashion_mnist": 0.926, "svhn_cropped": 0.894, "cifar10": 0.855}
# `source` of each image in rounds/NNN/garbage.npz (files without it hold generator images only).
SOURCE_GENERATOR, SOURCE_PIXELS = 0, 1
log = logging.getLogger(__name__)


def garbage_info(config) -> data.DatasetInfo:
  """The dataset's info with one more class, "garbage", last."""
  info = data.info(config.dataset)
  return dataclasses.replace(info, num_classes=info.num_classes + 1,
                             class_names=(*info.class_names, ood.GARBAGE))


def round_dir(workdir, r: int) -> Path:
  return Path(workdir) / "rounds" / f"{r:03d}"


def baseline_config(config):
  """The config of the plain K-class classifier: the same, with the ood section at its
  defaults (so changing an ood field never invalidates a finished baseline)."""
  result = type(config)(config.to_dict())
  result.ood = config_lib.default_config(config.dataset).ood
  return result


def _classifier_checkpoints(config, directory) -> checkpoint.Checkpointer:
  return checkpoint.Checkpointer(
      directory, kind="ood_classifier",
      fingerprint={**classifier_run.fingerprint(config), "num_classes": garbage_info(config).num_classes},
      keep=config.checkpoint.keep)


def _generator_checkpoints(config, directory) -> checkpoint.Checkpointer:
  return checkpoint.Checkpointer(
      directory, kind="ood_generator",
      fingerprint={**inversion_run.fingerprint(config), "num_classes": garbage_info(config).num_classes},
      keep=config.checkpoint.keep)


def class_weights(labels: np.ndarray, num_classes: int, weighting: str, garbage_weight: float):
  """Per-class CE weights: "balanced" N / (C·n_k) (absent classes 0), or 1; the last
  (garbage) class is then multiplied by `garbage_weight`."""
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  if weighting == "balanced":
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
  else:
    weights = np.ones(num_classes)
  weights[-1] *= garbage_weight
  return weights.astype(np.float32)


def noise_seed_images(config) -> np.ndarray:
  info = data.info(config.dataset)
  if config.ood.noise_blur:
    return ood.smooth_noise_images([config.seed, 0x6761], config.ood.noise_images, info.image_shape,
                                   config.ood.noise_std, config.ood.noise_blur)
  return ood.gaussian_images([config.seed, 0x6761], config.ood.noise_images, info.image_shape,
                             config.ood.noise_std)


def seed_images(config, train_x=None) -> np.ndarray:
  """The garbage class before any round: the noise images, the shape images, the stroke
  images, then the shifted training images (drawn from `train_x`, loaded here if needed
  and not given)."""
  shape = data.info(config.dataset).image_shape
  shapes = garbage_sources.shape_images([config.seed, 0x7368], config.ood.shape_images, shape)
  strokes = garbage_sources.stroke_images([config.seed, 0x7374], config.ood.stroke_images, shape)
  parts = [noise_seed_images(config), shapes, strokes]
  if config.ood.shifted_images:
    if train_x is None:
      train_x, _ = classifier_run.load_split(config, "train")
    parts.append(garbage_sources.shifted_images([config.seed, 0x7366], train_x,
                                                config.ood.shifted_images,
                                                tuple(config.ood.shifted_transforms)))
  return np.concatenate(parts)


def pixel_inversion_starts(config, r: int, count: int) -> np.ndarray:
  """`count` start images for round r's hard negatives: image i is of kind
  `ood.pixel_inversion_starts[i % kinds]`. Shapes keep the key they had when they were the
  only kind, so ("shapes",) draws what earlier runs drew."""
  shape = garbage_info(config).image_shape
  kinds = tuple(config.ood.pixel_inversion_starts)
  draw = {"shapes": lambda n: garbage_sources.shape_images([config.seed, 0x7069, r], n, shape),
          "strokes": lambda n: garbage_sources.stroke_images([config.seed, 0x7069, r, 1], n, shape)}
  which = np.arange(count) % len(kinds)
  starts = np.empty((count, *shape), np.float32)
  for k, kind in enumerate(kinds):
    starts[which == k] = draw[kind](int(np.sum(which == k)))
  return starts


def pixel_inversions(config, r: int, model, classifier_vars):
  """Round r's hard negatives: `ood.pixel_inversions_per_class` start images per K+1
  class (the kinds of `ood.pixel_inversion_starts`, interleaved), moved by pixel-space
  inversion until round r's classifier assigns them that class. Returns `(images, labels)`."""
  info = garbage_info(config)
  labels = sampling.labels_for(config.ood.pixel_inversions_per_class, range(info.num_classes))
  starts = pixel_inversion_starts(config, r, len(labels))
  images = garbage_sources.hard_negatives(
      model, classifier_vars, starts, labels, steps=config.ood.pixel_inversion_steps,
      learning_rate=config.ood.pixel_inversion_lr, batch_size=EVAL_BATCH)
  return images, labels


def garbage_before(config, workdir, r: int, seed=None) -> np.ndarray:
  """The garbage class as round r trains on it: the seed (`seed_images(config)`, drawn
  here unless given; its shifted images only from round `ood.shifted_from_round` on), then
  rounds 0 … r−1."""
  seed = seed_images(config) if seed is None else seed
  if r < config.ood.shifted_from_round:  # the shifted images are the seed's last ones
    seed = seed[:len(seed) - config.ood.shifted_images]
  parts = [seed]
  for q in range(r):
    path = round_dir(workdir, q) / "garbage.npz"
    parts.append(paths.load_npz(path)["images"])
  return np.concatenate(parts)


def _write_npz(path: Path, **arrays) -> None:
  """Written to a temporary name and renamed: a killed write never looks finished."""
  tmp = path.with_name(path.stem + ".partial.npz")
  paths.save_npz(tmp, **arrays)
  tmp.replace(path)


# --- one round ---

def _train_classifier(config, workdir, r, *, model, mesh, keys, train_x, train_y, seed, previous):
  """Round r's classifier phase; returns its final `{"params", "batch_stats"}` on the host."""
  info = garbage_info(config)
  garbage = garbage_before(config, workdir, r, seed)
  x = np.concatenate([train_x, garbage])
  y = np.concatenate([train_y, np.full(len(garbage), info.num_classes - 1, np.int32)])
  weights = class_weights(y, info.num_classes, config.ood.class_weighting, config.ood.garbage_weight)
  example_weight = weights[y]
  batch_size = config.classifier.batch_size
  steps_per_epoch = classifier_run.epoch_steps(len(x), batch_size)
  total = steps_per_epoch * config.ood.epochs_per_round
  tx = classifier_run.make_optimizer(config, total)
  kernel = classifier_run.whitening_kernel(config, train_x)  # airbench: set from the ID data
  init = lambda key: classifier_run.init_state(config, model, info.image_shape, tx, key, kernel)
  phase = Workdir(round_dir(workdir, r) / "classifier")
  ckpt = _classifier_checkpoints(config, phase.checkpoint_dir)
  state, start = _resume_or_start(ckpt, config, init, keys["classifier_init"], tx, previous, mesh)
  phase.truncate_metrics(start)
  replicated = sharding.replicated(mesh)
  # The classifier recipe's label smoothing and augmentation (off in the MNIST-family configs).
  train_step = jax.jit(steps.make_classifier_step(model, tx,
                                                  label_smoothing=config.classifier.label_smoothing,
                                                  augment=classifier_run.augmentation(config)),
                       donate_argnums=0, out_shardings=(replicated, replicated))
  dropout_key = jax.random.fold_in(keys["classifier_dropout"], r)

  def step_fn(state, step):
    epoch, index = divmod(step, steps_per_epoch)
    order = np.random.default_rng([config.seed, r, epoch]).permutation(len(x))
    idx = np.sort(order[index * batch_size:(index + 1) * batch_size])
    idx = idx[distributed.local_slice(batch_size)]
    batch = sharding.put_batch({"image": x[idx], "label": y[idx], "weight": example_weight[idx]}, mesh)
    state, values = train_step(state, batch, dropout_key)
    return state, {**values, "epoch": epoch}

  log.info("ood round %d: classifier on %d examples (%d garbage), steps %d to %d", r, len(x),
           len(garbage), start, total)
  try:
    state = loop.train(state, step_fn, start_step=start, total_steps=total, log_metrics=phase.log_metrics,
                       checkpointer=ckpt, save_every=config.checkpoint.every,
                       log_every=config.classifier.log_every, desc=f"ood[{r}] classifier",
                       postfix=("loss", "accuracy"),
                       block_each_step=mesh.size > 1 and jax.default_backend() == "cpu")
  finally:
    ckpt.close()
    phase.close()
  return (distributed.to_host({"params": state.params, "batch_stats": state.batch_stats}),
          {"garbage_trained_on": int(len(garbage)), "class_weights": weights.tolist()})


def _generator_config(config):
  """The config the inversion helpers read, with the per-round step count."""
  result = type(config)(config.to_dict())
  result.inversion.steps = config.ood.inversion_steps
  return result


def _train_generator(config, workdir, r, *, model, classifier_vars, generator, mesh, keys, previous):
  """Round r's generator phase; returns its final `{"params", "batch_stats"}` on the host."""
  info = garbage_info(config)
  gen_config = _generator_config(config)
  inv = gen_config.inversion
  tx = inversion_run.make_optimizer(gen_config)
  init = lambda key: inversion_run.init_generator_state(gen_config, generator, tx, key)
  phase = Workdir(round_dir(workdir, r) / "generator")
  ckpt = _generator_checkpoints(config, phase.checkpoint_dir)
  state, start = _resume_or_start(ckpt, config, init, keys["generator_init"], tx, previous, mesh)
  phase.truncate_metrics(start)
  extra_terms, extra_weights = options.terms_and_weights(gen_config)
  weights = steps.loss_weights(inv.alpha, inv.beta, inv.gamma, inv.delta, **extra_weights)
  inversion_state = steps.InversionState(
      generator=state, classifier=sharding.put_replicated(classifier_vars, mesh),
      loss_weights=sharding.put_replicated(weights, mesh),
      dropout_rate=sharding.put_replicated(jnp.float32(config.generator.dropout_rate), mesh))
  one_step = steps.make_inversion_train_step(
      steps.make_inversion_step(generator, model, tx, inv.feature_layer, extra_terms=extra_terms,
                                kl_temperature=inv.kl_temperature),
      batch_size=inv.batch_size,
      num_classes=info.num_classes, latent_dim=generator.latent_dim, mode=generator.mode,
      temperature=generator.temperature,
      batch_sharding=sharding.data_sharded(mesh))
  replicated = sharding.replicated(mesh)
  train_step = jax.jit(one_step, donate_argnums=0, out_shardings=(replicated, replicated))
  step_keys = {"conditioning": jax.random.fold_in(keys["conditioning"], r),
               "dropout": jax.random.fold_in(keys["generator_dropout"], r)}
  log.info("ood round %d: generator steps %d to %d", r, start, inv.steps)
  try:
    inversion_state = loop.train(
        inversion_state, lambda s, step: train_step(s, step_keys), start_step=start,
        total_steps=inv.steps, log_metrics=phase.log_metrics, checkpointer=ckpt,
        save_every=config.checkpoint.every,
        log_every=inv.log_every, desc=f"ood[{r}] generator", postfix=("loss", "target_accuracy"),
        to_checkpoint=lambda s: s.generator,
        block_each_step=mesh.size > 1 and jax.default_backend() == "cpu")
  finally:
    ckpt.close()
    phase.close()
  g = inversion_state.generator
  return distributed.to_host({"params": g.params, "batch_stats": g.batch_stats})


def _resume_or_start(ckpt, config, init, key, tx, previous, mesh):
  """`(TrainState, first step)` of a phase: its newest checkpoint, else a warm start from
  the previous round's `{"params", "batch_stats"}` with a fresh optimizer, else `init(key)`."""
  if ckpt.latest_step() is not None:
    target = checkpoint.restore_target(init, key)
    state, start = ckpt.restore_latest(sharding.put_replicated(target, mesh),
                                       fallback=config.checkpoint.fallback_to_intact)
    if state is not None:
      return state, start
  if previous is None:
    return sharding.create_replicated(init, mesh, key), 0
  previous = sharding.put_replicated(previous, mesh)
  return steps.TrainState(step=jnp.zeros((), jnp.int32), params=previous["params"],
                          batch_stats=previous["batch_stats"],
                          opt_state=tx.init(previous["params"])), 0


def _classifier_target(config, model):
  """A restore target for the K+1-class classifier's checkpoints (`checkpoint.restore_target`)."""
  info = garbage_info(config)
  return checkpoint.restore_target(
      lambda key: classifier_run.init_state(config, model, info.image_shape,
                                            classifier_run.make_optimizer(config, 1), key),
      jax.random.key(0))


def _restore_phase(checkpointer_fn, config, directory, target):
  with checkpointer_fn(config, directory) as ckpt:
    return ckpt.restore_model({"params": target.params, "batch_stats": target.batch_stats})


@functools.lru_cache(maxsize=8)
def _predict_fn(model):
  return jax.jit(lambda variables, x: model.apply(variables, x, train=False)[0])


def logits_of(model, variables, images) -> np.ndarray:
  return batched(lambda x: _predict_fn(model)(variables, x), [images], EVAL_BATCH)


def run(config, workdir) -> dict:
  config_lib.validate(config)
  config = config_lib.with_absolute_paths(config)
  distributed.initialize(config.distributed)
  info = garbage_info(config)
  if config.ood.shifted_images:  # before the baseline trains: a transform the images cannot take
    garbage_sources.check_shift_transforms(tuple(config.ood.shifted_transforms), info.image_shape)
  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_batch_size(config.classifier.batch_size, mesh, "classifier.batch_size")
  sharding.check_batch_size(config.inversion.batch_size, mesh, "inversion.batch_size")
  work = Workdir(workdir)
  rounds_root = Path(workdir) / "rounds"
  work.start(config, resuming=rounds_root.is_dir() and any(rounds_root.iterdir()))
  work.close()

  # The plain K-class classifier for the baselines (resumes like any classifier run).
  baseline_dir = Path(workdir) / "baseline"
  if not (baseline_dir / "summary.json").is_file():
    classifier_run.run(baseline_config(config), baseline_dir)

  keys = rng.named_keys(config.seed, KEY_NAMES)
  train_x, train_y = classifier_run.load_split(config, "train")
  test_x, test_y = classifier_run.load_split(config, "test")
  test_x, test_y = test_x[:config.ood.eval_max_images], test_y[:config.ood.eval_max_images]
  model = classifier_run.build_model(config, info.num_classes)
  generator = inversion_run.build_generator(config, info)
  cls_target = _classifier_target(config, model)
  gen_target = checkpoint.restore_target(
      lambda key: inversion_run.init_generator_state(config, generator,
                                                     inversion_run.make_optimizer(config), key),
      jax.random.key(0))
  seed = seed_images(config, train_x)  # drawn once: every round's classifier trains on it
  rounds = config.ood.rounds
  cls_vars = gen_vars = None
  round_summaries = []
  for r in range(rounds + 1):
    rdir = round_dir(workdir, r)
    last = r == rounds
    done_path = rdir / "summary.json"
    if done_path.is_file() and (last or (rdir / "garbage.npz").is_file()):
      round_summaries.append(json.loads(done_path.read_text()))
      cls_vars = gen_vars = None  # restored from disk if a later round needs them
      continue
    if r > 0 and cls_vars is None:
      cls_vars = _restore_phase(_classifier_checkpoints, config, round_dir(workdir, r - 1) / "classifier/checkpoints",
                                cls_target)
    cls_vars, cls_record = _train_classifier(config, workdir, r, model=model, mesh=mesh, keys=keys,
                                             seed=seed,
                                             train_x=train_x, train_y=train_y, previous=cls_vars)
    summary = {"round": r, **cls_record}
    test_pred = logits_of(model, cls_vars, test_x).argmax(-1)
    summary["test_accuracy"] = metrics.accuracy(test_pred, test_y)
    summary["test_sent_to_garbage"] = metrics.detection_rate(test_pred, info.num_classes - 1)
    if not last:
      if (rdir / "garbage.npz").is_file():
        gen_vars = None
      else:
        if r > 0 and gen_vars is None:
          gen_vars = _restore_phase(_generator_checkpoints, config,
                                    round_dir(workdir, r - 1) / "generator/checkpoints", gen_target)
        gen_vars = _train_generator(config, workdir, r, model=model, classifier_vars=cls_vars,
                                    generator=generator, mesh=mesh, keys=keys, previous=gen_vars)
        labels = sampling.labels_for(config.ood.samples_per_class, range(info.num_classes))
        images = sampling.sample(generator, gen_vars, labels, jax.random.fold_in(keys["sample"], r),
                                 batch_size=EVAL_BATCH, dropout=config.generator.dropout_at_sampling)
        source = np.full(len(labels), SOURCE_GENERATOR, np.int8)
        if config.ood.pixel_inversions_per_class:
          more_images, more_labels = pixel_inversions(config, r, model, cls_vars)
          images = np.concatenate([images, more_images])
          labels = np.concatenate([labels, more_labels])
          source = np.concatenate([source, np.full(len(more_labels), SOURCE_PIXELS, np.int8)])
        if distributed.is_primary():
          _write_npz(rdir / "garbage.npz", images=images, labels=labels, source=source)
      f = paths.load_npz(rdir / "garbage.npz")
      images, labels = f["images"], f["labels"]
      source = f["source"] if "source" in f else np.full(len(labels), SOURCE_GENERATOR, np.int8)
      # How the classifier that was inverted sees its inversions (method notes §6, step 4:
      # rounds go on until the inverted samples look in-distribution and their uncertainty drops).
      inv_logits = logits_of(model, cls_vars, images)
      for name, chosen in (("inverted", source == SOURCE_GENERATOR), ("pixel_inverted", source == SOURCE_PIXELS)):
        if chosen.any():
          summary[f"{name}_target_accuracy"] = metrics.accuracy(inv_logits[chosen].argmax(-1), labels[chosen])
          summary[f"{name}_mean_ue"] = float(ood.uncertainty_score(inv_logits[chosen]).mean())
          summary[f"{name}_added"] = int(chosen.sum())
    if distributed.is_primary():
      done_path.write_text(json.dumps(summary, indent=2) + "\n")
    log.info("ood round %d: %s", r, summary)
    round_summaries.append(summary)

  final = {"dataset": config.dataset, "rounds": rounds, "round_summaries": round_summaries,
           "baseline": json.loads((baseline_dir / "summary.json").read_text())["test_accuracy"],
           "wall_time_s": round(time.perf_counter() - work.start_time, 2)}
  work.write_summary(final)
  return final


# --- using a trained run ---

@dataclasses.dataclass
class Detector:
  """The K+1-class classifiers of the last `ood.detector_rounds` rounds (the final one
  last) and the plain K-class baseline of an `ood train` run. The detector's output is
  the mean of its classifiers' probabilities; its `garbage_energy` score adds the
  baseline's free energy (`score`)."""
  config: object
  model: object
  variables: list
  baseline_model: object
  baseline_variables: dict

  @property
  def garbage_class(self) -> int:
    return garbage_info(self.config).num_classes - 1

  @property
  def model_input_shape(self) -> tuple:
    return tuple(data.info(self.config.dataset).image_shape)


def restore(workdir) -> Detector:
  workdir = Path(workdir)
  config = read_config(workdir, PRODUCED_BY)
  rounds = config.ood.rounds
  final = round_dir(workdir, rounds)
  if not (final / "summary.json").is_file():
    raise FileNotFoundError(
        f"{workdir} holds no finished `jaxinv ood train` run ({final / 'summary.json'} is missing); "
        "rerun `jaxinv ood train` with the same arguments to finish it.")
  first = rounds + 1 - config.ood.detector_rounds
  model, variables = round_classifiers(workdir, range(first, rounds + 1), config)
  base_model, base_vars, _, _ = classifier_run.restore(workdir / "baseline")
  return Detector(config, model, variables, base_model, base_vars)


def round_classifiers(workdir, rounds, config=None):
  """The K+1-class model and the variables of its classifier in each of `rounds` (round
  numbers of a run in `workdir`), e.g. to score every round alone."""
  workdir = Path(workdir)
  config = config or read_config(workdir, PRODUCED_BY)
  model = classifier_run.build_model(config, garbage_info(config).num_classes)
  target = _classifier_target(config, model)
  variables = []
  for r in rounds:
    directory = round_dir(workdir, r) / "classifier/checkpoints"
    if not directory.is_dir():
      raise FileNotFoundError(f"{directory} is missing: round {r} of {workdir} has not trained "
                              "its classifier (rerun `jaxinv ood train`).")
    variables.append(_restore_phase(_classifier_checkpoints, config, directory, target))
  return model, variables


def check_images(images, image_shape, source: str = "images") -> np.ndarray:
  images = np.asarray(images)
  if images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape):
    raise ValueError(f"{source}: expected N×{'×'.join(map(str, image_shape))} images (the "
                     f"detector's input shape), got shape {images.shape}. Resize them first "
                     "(jaxinv.data.resize_images).")
  if not np.issubdtype(images.dtype, np.floating):
    raise ValueError(f"{source}: expected float images in [-1, 1], got dtype {images.dtype} "
                     "(scale uint8 pixels as x / 127.5 - 1).")
  if len(images) and (not np.isfinite(images).all() or images.min() < -1.001 or images.max() > 1.001):
    raise ValueError(f"{source}: pixel values must lie in [-1, 1]; got [{images.min()}, "
                     f"{images.max()}] (scale uint8 pixels as x / 127.5 - 1).")
  return images.astype(np.float32)


def score(detector: Detector, images) -> dict:
  """Every score (higher = more OOD) of `images`, plus both classifiers' predictions."""
  c = detector.config.ood
  images = check_images(images, detector.model_input_shape)
  members = [logits_of(detector.model, variables, images) for variables in detector.variables]
  # Logits whose softmax is the members' mean probability: every score reads them like one
  # classifier's.
  logits = ood.mean_probability_logits(members)
  base = logits_of(detector.baseline_model, detector.baseline_variables, images)
  perturbed = batched(
      lambda x: ood.odin_logits(detector.baseline_model, detector.baseline_variables, x,
                                temperature=c.odin_temperature, epsilon=c.odin_epsilon),
      [images], EVAL_BATCH)
  return {
      "garbage": ood.garbage_score(logits),
      "garbage_energy": ood.garbage_energy_score(members, [base], c.energy_weight),
      "ue": ood.uncertainty_score(logits),
      "id_msp": ood.id_msp_score(logits),
      "msp": ood.msp_score(base), "odin": ood.odin_score(perturbed, c.odin_temperature),
      "energy": ood.energy_score(base),
      "garbage_probability": ood.garbage_probability(logits),
      "prediction": logits.argmax(-1).astype(np.int32),
      "baseline_prediction": base.argmax(-1).astype(np.int32),
  }


def load_ood_set(name: str, config, id_test: np.ndarray) -> np.ndarray:
  """Images of OOD set `name` in the in-distribution shape, at most ood.eval_max_images."""
  info = data.info(config.dataset)
  count = config.ood.eval_max_images
  seed = [config.seed, 0x6f6f64, sum(name.encode())]
  if name == "gaussian":
    return ood.gaussian_images(seed, min(count, len(id_test)), info.image_shape, GAUSSIAN_SET_STD)
  if name == "uniform":
    return ood.uniform_images(seed, min(count, len(id_test)), info.image_shape)
  if name == "flipped":
    return ood.flipped(id_test)
  if name == "inverted":
    return ood.inverted(id_test)
  if not data.is_dataset(name):
    raise ValueError(f"Unknown OOD set {name!r}; choose from {list(data.DATASETS)}, "
                     f"{data.FOLDER_PREFIX}PATH or {list(ood.SYNTHETIC_SETS)}.")
  if name == config.dataset:
    raise ValueError(f"{name} is the in-distribution dataset; choose another OOD set.")
  images, _ = data.load(name, "test", data_dir=config.data_dir or None)
  if len(images) < count:  # e.g. the 20 local CIFAR-10 test images: add the 200 training ones
    extra, _ = data.load(name, "train", data_dir=config.data_dir or None)
    images = np.concatenate([images, extra])
  images = images[:count]
  if tuple(images.shape[1:]) != tuple(info.image_shape):
    images = data.resize_images(images, info.image_shape)
  return images


def evaluate(workdir, sets=None) -> dict:
  """Every score on the in-distribution test set and each OOD set; writes ood_eval.json,
  ood_table.md, score_histograms.png and garbage_rounds.png in the workdir."""
  workdir = Path(workdir)
  detector = restore(workdir)
  config = detector.config
  chosen = bool(sets)
  sets = tuple(sets or DEFAULT_SETS.get(config.dataset, ood.SYNTHETIC_SETS))
  test_x, test_y = data.load(config.dataset, "test", data_dir=config.data_dir or None)
  test_x, test_y = test_x[:config.ood.eval_max_images], test_y[:config.ood.eval_max_images]
  id_scores = score(detector, test_x)
  result = {
      "dataset": config.dataset, "seed": config.seed, "rounds": config.ood.rounds,
      "id_test_images": int(len(test_x)),
      "id_accuracy": metrics.accuracy(id_scores["prediction"], test_y),
      "id_sent_to_garbage": metrics.detection_rate(id_scores["prediction"], detector.garbage_class),
      "baseline_id_accuracy": metrics.accuracy(id_scores["baseline_prediction"], test_y),
      "paper_id_accuracy": PAPER_ACCURACY.get(config.dataset),
      "fpr_convention": "positives = in-distribution; FPR@95 = share of the OOD set accepted "
                        "when 95 % of the in-distribution test set is accepted",
      "sets": {},
  }
  out_scores, result["skipped"] = {}, {}
  for name in sets:
    try:
      images = load_ood_set(name, config, test_x)
    except data.DataError as e:
      if chosen:  # asked for by name: its data must be there
        raise
      # A default set whose data this machine lacks (SVHN offline): said in the table.
      log.warning("OOD set %s skipped: %s", name, e)
      result["skipped"][name] = str(e)
      continue
    s = score(detector, images)
    out_scores[name] = s
    result["sets"][name] = {
        "images": int(len(images)),
        "detection_rate": metrics.detection_rate(s["prediction"], detector.garbage_class),
        "paper_detection_rate": PAPER_DETECTION.get((config.dataset, name)),
        "scores": {k: metrics.ood_metrics(id_scores[k], s[k]) for k in ood.SCORES},
    }
  table = format_table(result)
  (workdir / "ood_eval.json").write_text(json.dumps(result, indent=2) + "\n")
  (workdir / "ood_table.md").write_text(table + "\n")
  work = Workdir(workdir)
  work.save_figure(plotting.score_histograms(
      {k: id_scores[k] for k in ood.SCORES}, {n: {k: s[k] for k in ood.SCORES} for n, s in out_scores.items()},
      title=f"{config.dataset} (in) vs OOD sets: scores, higher = more OOD", log_x=("ue", "msp", "id_msp")),
      "score_histograms.png")
  work.save_figure(plotting.garbage_rounds(
      garbage_rows(config, workdir), title=f"{config.dataset}: garbage class, per round"),
      "garbage_rounds.png")
  result["table"] = table
  return result


def garbage_rows(config, workdir, per_class: int = 2):
  """`[(row name, images)]`: the noise seed, the shape, stroke and shifted seeds, then
  `per_class` inverted images of each of the K+1 classes for every round (generator, then
  pixel inversions)."""
  count = per_class * garbage_info(config).num_classes
  rows = [("noise seed", noise_seed_images(config)[:count])]
  seeded = seed_images(config)
  start = config.ood.noise_images
  for name, size in (("shape seed", config.ood.shape_images), ("stroke seed", config.ood.stroke_images),
                     ("shifted seed", config.ood.shifted_images)):
    if size:
      rows.append((name, seeded[start:start + min(size, count)]))
    start += size
  for r in range(config.ood.rounds):
    f = paths.load_npz(round_dir(workdir, r) / "garbage.npz")
    images, labels = f["images"], f["labels"]
    source = f["source"] if "source" in f else np.full(len(labels), SOURCE_GENERATOR, np.int8)
    for code, suffix in ((SOURCE_GENERATOR, ""), (SOURCE_PIXELS, " pixels")):
      mine = np.flatnonzero(source == code)
      if len(mine):
        chosen = np.concatenate([mine[labels[mine] == k][:per_class] for k in np.unique(labels[mine])])
        rows.append((f"round {r}{suffix}", images[chosen]))
  return rows


def format_table(result: dict) -> str:
  """Markdown: one row per OOD set × score; the inversion detector's scores first."""
  pct = lambda v: "—" if v is None else f"{100 * v:.1f}"
  lines = [
      f"In-distribution: **{result['dataset']}** (seed {result['seed']}, {result['rounds']} rounds, "
      f"{result['id_test_images']} test images). ID accuracy: K+1-class detector "
      f"**{pct(result['id_accuracy'])} %** ({pct(result['id_sent_to_garbage'])} % of ID test sent to "
      f"garbage), plain K-class baseline {pct(result['baseline_id_accuracy'])} %, paper "
      f"{pct(result['paper_id_accuracy'])} %.",
      "",
      "| OOD set | score | AUROC | AUPR-in | AUPR-out | FPR@95 (%) | detection (%) | paper detection (%) |",
      "|---|---|---|---|---|---|---|---|"]
  for name, entry in result["sets"].items():
    for k in ood.SCORES:
      m = entry["scores"][k]
      is_garbage = k == "garbage"
      lines.append(
          f"| {name} ({entry['images']}) | {k}{'' if k in ood.DETECTOR_SCORES else ' (baseline)'} | "
          f"{m['auroc']:.4f} | {m['aupr_in']:.4f} | {m['aupr_out']:.4f} | {100 * m['fpr95']:.2f} | "
          f"{pct(entry['detection_rate']) if is_garbage else ''} | "
          f"{pct(entry['paper_detection_rate']) if is_garbage else ''} |")
  for name, reason in result.get("skipped", {}).items():
    lines.append(f"\nNot evaluated: {name} ({reason})")
  return "\n".join(lines)
