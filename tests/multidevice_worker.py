"""Run in a subprocess with fake CPU devices (XLA_FLAGS set by the caller).

Trains the tiny digits classifier and inverts it on a 1-device mesh and on an
N-device mesh of the same process, then prints the largest parameter difference
of each run kind as JSON."""

import json
import sys
from pathlib import Path

import jax
import numpy as np

from jaxinv import config as config_lib
from jaxinv import data
from jaxinv.runs import classifier, inversion


def _max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _losses(workdir: Path):
  return [json.loads(line)["loss"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _max_rel_diff(a, b):
  a, b = np.asarray(a), np.asarray(b)
  return float(np.max(np.abs(a - b) / np.abs(a)))


def _float64_images_without_ties(load):
  """float64 images with a little fixed noise: digits have flat backgrounds whose
  max-pool windows hold exact ties, and which element of a tie takes the gradient
  flips with a 1-ulp difference in how the elementwise code before the pool is
  generated (measured: 1 vs 8 devices, float64, gradients O(1e3) apart after one
  step with ties, 1e-9 without)."""
  def load_without_ties(*args, **kwargs):
    images, labels = load(*args, **kwargs)
    noise = np.random.default_rng(0).normal(0.0, 1e-3, images.shape)
    return images.astype(np.float64) + noise, labels
  return load_without_ties


def main(root: Path, num_devices: int, steps: int):
  assert jax.device_count() >= num_devices, jax.devices()
  if jax.config.jax_enable_x64:
    data.load = _float64_images_without_ties(data.load)
  results = {}
  for n in (1, num_devices):
    config = config_lib.default_config("digits", "tiny")
    config.num_devices = n
    config.inversion.steps = steps
    config.inversion.eval_samples_per_class = 4
    config.max_train_examples = 64 * steps  # `steps` classifier steps in one epoch
    classifier.run(config, root / f"cls{n}")
    # Both inversions invert the same classifier, so only the mesh differs.
    config.init_from = str(root / "cls1")
    inversion.run(config, root / f"inv{n}")
    _, cvars, _, _ = classifier.restore(root / f"cls{n}")
    _, gvars, _ = inversion.restore(root / f"inv{n}")
    results[n] = (cvars, gvars, _losses(root / f"inv{n}"), _losses(root / f"cls{n}"))
  print(json.dumps({
      "classifier_max_abs_diff": _max_diff(results[1][0], results[num_devices][0]),
      "generator_max_abs_diff": _max_diff(results[1][1], results[num_devices][1]),
      "generator_loss_max_rel_diff": _max_rel_diff(results[1][2], results[num_devices][2]),
      "classifier_loss_max_rel_diff": _max_rel_diff(results[1][3], results[num_devices][3]),
      "devices": jax.device_count(),
  }))


if __name__ == "__main__":
  main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
