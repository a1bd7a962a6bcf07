"""Run in a subprocess (JAX_ENABLE_X64 as the caller sets it): trains each member
of a 2-member ensemble alone, then the ensemble with each IMPL, for STEPS steps;
prints the largest parameter difference per member and impl as JSON.

    ensemble_worker.py ROOT STEPS IMPL[,IMPL…]   (IMPL: vmap, unrolled)

Measured in float32 after 20 steps: vmap 1.0e-3 / 1.1e-5, unrolled 1.0e-3 /
3.6e-7 (members 0 / 1) — neither program rounds like the lone one.

With JAX_ENABLE_X64=1 activations and gradients are float64 (parameters and Adam
stay float32), so a member and its lone run differ only by rounding: float64 in the
network, and the float32 Adam update, which XLA fuses differently in the ensemble's
program (measured, unrolled: bit-identical after 1 step, 1 ulp after 5, 5.9e-5 after 20
as those ulps grow — hence few steps in the test). In
float32 the batched (vmapped) convolutions round differently from the unbatched
ones and Adam's per-entry normalisation amplifies that (measured: ~1e-5 after 1
step, ~1e-3 after 20), so only the float64 comparison can show both programs
compute the same function."""

import json
import sys
from pathlib import Path

import jax
import numpy as np

from jaxinv.runs import options
from jaxinv import config as config_lib
from jaxinv import ensemble
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import inversion as inversion_run


def _config(classifier_dir, steps):
  config = config_lib.default_config("digits", "tiny")
  config.init_from = str(classifier_dir)
  config.inversion.steps = steps
  config.inversion.eval_samples_per_class = 4
  config.checkpoint.every = 2
  return config


def _max_diff(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def main(root: Path, steps: int, impls: list[str]):
  classifier_run.run(config_lib.default_config("digits", "tiny"), root / "classifier")
  config = _config(root / "classifier", steps)
  config.ensemble.seeds = (3, 12)
  config.ensemble.beta = (4.0, 2.0)
  config.ensemble.dropout_rate = (0.2, 0.4)
  lone = []
  for i, member in enumerate(options.members(config)):
    alone = _config(root / "classifier", steps)
    alone.seed = member.seed
    alone.inversion.beta = member.beta
    alone.generator.dropout_rate = member.dropout_rate
    inversion_run.run(alone, root / f"alone{i}")
    lone.append(inversion_run.restore(root / f"alone{i}")[1])
  diffs = {}
  for impl in impls:
    config.ensemble.impl = impl
    summary = inversion_run.run(config, root / impl)
    _, stacked, _ = inversion_run.restore(root / impl)
    diffs[impl] = [_max_diff(ensemble.unstack(stacked, i), v) for i, v in enumerate(lone)]
  last = json.loads((root / impls[-1] / "metrics.jsonl").read_text().splitlines()[-1])
  print(json.dumps({"diffs": diffs, "x64": bool(jax.config.jax_enable_x64),
                    "seeds": [m["seed"] for m in summary["members"]],
                    "per_class_lengths": [len(m["target_accuracy_per_class"]) for m in summary["members"]],
                    "logged": sorted(last)}))


if __name__ == "__main__":
  main(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(","))
