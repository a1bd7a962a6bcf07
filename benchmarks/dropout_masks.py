"""The generator's dropout masks from `layers.keep_mask` (four 16-bit decisions per
Threefry hash) against `jax.random.bernoulli` (one per hash, nn.Dropout's masks), whole
inversion steps timed in the same process, alternating.

    python benchmarks/dropout_masks.py [--batches 64 256] [--steps 10] [--models fast]
"""

import argparse

import jax

import step_speed
import jaxinv.cpu
from jaxinv.models import layers


def _bernoulli_mask(key, keep, shape):
  return jax.random.bernoulli(key, keep, shape), keep


def main():
  parser = argparse.ArgumentParser()
  step_speed.add_ab_arguments(parser, models_default=["fast"])
  args = parser.parse_args()
  jaxinv.cpu.enable()  # the CPU machinery the jaxinv command runs with (inert off a CPU)
  print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}")
  print(f"{'step':<22} {'batch':>5} {'keep_mask ms':>12} {'bernoulli ms':>12} {'ratio':>6}")
  fast_mask = layers.keep_mask
  for preset in args.models:
    for batch in args.batches:
      runs = {}
      for name, mask in (("keep_mask", fast_mask), ("bernoulli", _bernoulli_mask)):
        layers.keep_mask = mask  # looked up when the step is traced (compiled here)
        try:
          runs[name] = step_speed.jax_inversion(preset, batch)[0]
        finally:
          layers.keep_mask = fast_mask
      medians = step_speed.alternating_medians(runs, args.rounds, args.steps)
      new, old = medians["keep_mask"], medians["bernoulli"]
      print(f"{'inversion/' + preset:<22} {batch:5d} {new:12.1f} {old:12.1f} {old / new:6.2f}", flush=True)


if __name__ == "__main__":
  main()
