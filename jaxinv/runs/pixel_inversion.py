"""The DeepInversion pixel baseline as a run: `run(config, workdir)`.

Optimises `config.pixel.images_per_class` images per class in batches of
`config.pixel.batch_size` (each batch holds every class equally), `config.pixel.steps`
Adam steps per batch, with the config's inversion weights, priors and robustness
transforms. Each finished batch is saved in `WORKDIR/batches/` (a rerun skips it);
at the end `images.npz` (images, labels), `summary.json` (with the time per 1 000
images) and `samples_grid.png`. `jaxinv evaluate --workdir WORKDIR` evaluates the
images like a generator's.
"""

import logging
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils.epath import Path

from jaxinv import config as config_lib
from jaxinv import data, paths, pixel_inversion, plotting, rng, steps
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import inversion, options
from jaxinv.runs.workdir import Workdir, read_config

log = logging.getLogger(__name__)


def batch_labels(config, num_classes: int) -> np.ndarray:
  """All labels, ordered so that each batch of `pixel.batch_size` cycles through the classes."""
  total = config.pixel.images_per_class * num_classes
  if total % config.pixel.batch_size:
    raise ValueError(f"pixel.images_per_class × classes = {total} is not a multiple of "
                     f"pixel.batch_size = {config.pixel.batch_size}; choose sizes that divide.")
  return np.tile(np.arange(num_classes, dtype=np.int32), config.pixel.images_per_class)


def run(config, workdir) -> dict:
  config_lib.validate(config)
  config = config_lib.with_absolute_paths(config)
  if not config.init_from:
    raise ValueError("The pixel baseline inverts a trained classifier: pass "
                     "--config.init_from=CLASSIFIER_WORKDIR.")
  info = data.info(config.dataset)
  work = Workdir(workdir)
  work.write_config(config)
  model, variables, classifier_config, classifier_step = classifier_run.restore(config.init_from)
  inversion.check_compatible(config, info, model, variables, classifier_config)
  extra_terms, extra_weights = options.terms_and_weights(config)
  inv = config.inversion
  weights = steps.loss_weights(inv.alpha, inv.beta, inv.gamma, inv.delta, **extra_weights)
  tx = optax.adam(config.pixel.learning_rate)
  step = pixel_inversion.make_pixel_step(model, tx, inv.feature_layer, extra_terms,
                                         options.input_transform(config),
                                         kl_temperature=inv.kl_temperature)
  num_steps = config.pixel.steps

  @jax.jit
  def solve(labels, key):
    init_key, step_key = jax.random.split(key)
    state = pixel_inversion.init_state(init_key, labels.shape[0], info.image_shape, tx, variables,
                                       weights, config.pixel.init_std)
    batch = {"p": jax.nn.one_hot(labels, info.num_classes), "y": labels}
    state, metrics = pixel_inversion.optimise(step, state, batch, step_key, num_steps)
    return state.pixels, metrics

  labels = batch_labels(config, info.num_classes)
  size = config.pixel.batch_size
  key = rng.named_keys(config.seed, ["pixels"])["pixels"]
  batch_dir = work.path / "batches"
  batch_dir.mkdir(exist_ok=True)
  seconds = []
  for i, start in enumerate(range(0, len(labels), size)):
    path = batch_dir / f"batch_{i:04d}.npz"
    if path.is_file():
      continue
    began = time.perf_counter()
    images, metrics = solve(jnp.asarray(labels[start:start + size]), jax.random.fold_in(key, i))
    images = np.asarray(images)
    seconds.append(time.perf_counter() - began)
    paths.save_npz(path, images=images, labels=labels[start:start + size], seconds=seconds[-1],
             **{f"final_{k}": np.asarray(v) for k, v in metrics.items()})
    log.info("pixel batch %d: %.1f s, final target accuracy %.3f", i, seconds[-1],
             float(metrics["target_accuracy"]))
  parts = [paths.load_npz(p) for p in sorted(batch_dir.glob("batch_*.npz"))]
  images = np.concatenate([p["images"] for p in parts])
  out_labels = np.concatenate([p["labels"] for p in parts])
  batch_seconds = [float(p["seconds"]) for p in parts]
  paths.save_npz(work.path / "images.npz", images=images, labels=out_labels)
  # The first batch includes compilation; the time per 1 000 images uses the others when there are.
  steady = batch_seconds[1:] or batch_seconds
  summary = {
      "dataset": config.dataset, "kind": "pixel_inversion",
      "classifier": {"workdir": config.init_from, "step": int(classifier_step)},
      "images": int(len(images)), "steps": num_steps, "batch_size": size,
      "batch_seconds": [round(s, 2) for s in batch_seconds],
      "seconds_per_1000_images": round(1000.0 * float(np.mean(steady)) / size, 1),
      "final_target_accuracy": float(np.mean([p["final_target_accuracy"] for p in parts])),
  }
  order = np.argsort(out_labels, kind="stable")
  work.save_figure(plotting.class_grid(images[order], out_labels[order], info.class_names,
                                       title=f"{config.dataset}: pixel inversion (DeepInversion baseline)"),
                   "samples_grid.png")
  work.write_summary(summary)
  work.close()
  return summary


def load_images(workdir):
  """`(images, labels, config)` of a finished pixel-inversion run."""
  path = Path(workdir) / "images.npz"
  if not path.is_file():
    raise FileNotFoundError(f"{workdir} has no images.npz: expected a finished `jaxinv pixel-invert` run.")
  f = paths.load_npz(path)
  return f["images"], f["labels"], read_config(workdir, "jaxinv pixel-invert")


def is_pixel_run(workdir) -> bool:
  """A pixel-inversion workdir (images, no generator checkpoints)."""
  return (Path(workdir) / "images.npz").is_file() and not (Path(workdir) / "checkpoints").is_dir()
