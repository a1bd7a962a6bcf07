"""Save and restore wall times of jaxinv checkpoints for the MNIST-sized states.

    python benchmarks/checkpoint_speed.py [--repeats 5]

Prints, per state (classifier TrainState, generator TrainState): parameter count,
bytes on disk, the time `save()` blocks the training loop (async part excluded),
the time until the save is committed (save + wait), and a full restore.
"""

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import jax

import jaxinv.cpu
from jaxinv import config as config_lib
from jaxinv import data
from jaxinv.checkpoint import Checkpointer
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import inversion as inversion_run


def states():
  config = config_lib.default_config("mnist")
  info = data.info("mnist")
  model = classifier_run.build_model(config, info.num_classes)
  yield "classifier (cnn)", classifier_run.init_state(
      config, model, info.image_shape, classifier_run.make_optimizer(config, 100), jax.random.key(0))
  generator = inversion_run.build_generator(config, info)
  yield "generator (width 32)", inversion_run.init_generator_state(
      config, generator, inversion_run.make_optimizer(config), jax.random.key(0))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  jaxinv.cpu.enable()  # the CPU machinery the jaxinv command runs with (inert off a CPU)
  print(f"{'state':22} {'params':>9} {'disk MB':>8} {'save blocks ms':>15} {'committed ms':>13} "
        f"{'restore ms':>11}")
  for name, state in states():
    root = Path(tempfile.mkdtemp())
    blocking, committed, restoring = [], [], []
    with Checkpointer(root / "ckpt", kind="bench", keep=args.repeats + 1) as ckpt:
      for step in range(1, args.repeats + 1):
        start = time.perf_counter()
        ckpt.save(step, state)
        blocking.append(time.perf_counter() - start)
        ckpt.wait()
        committed.append(time.perf_counter() - start)
      for step in range(1, args.repeats + 1):
        start = time.perf_counter()
        jax.block_until_ready(ckpt.restore(state, step))
        restoring.append(time.perf_counter() - start)
    size = sum(p.stat().st_size for p in (root / "ckpt" / "1").rglob("*") if p.is_file())
    count = sum(x.size for x in jax.tree.leaves(state.params))
    ms = lambda xs: f"{1000 * statistics.median(xs):.1f}"
    print(f"{name:22} {count:9d} {size / 1e6:8.2f} {ms(blocking):>15} {ms(committed):>13} "
          f"{ms(restoring):>11}")
    shutil.rmtree(root)


if __name__ == "__main__":
  main()
