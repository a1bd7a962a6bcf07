"""Batch-inversion throughput: G MNIST generators × N samples in one compiled call per chunk.

    python benchmarks/batch_inversion.py [--generators 1 4 16] [--samples 10000] [--batch 500]

Generators are the MNIST default architecture (configs/mnist.py), freshly
initialised with different seeds (throughput does not depend on trained values).
Prints the first call's time (compile + one chunk), steady-state wall time and images/s (G × N images per call).
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxinv.cpu
from jaxinv import batch_inversion, data, sampling
from jaxinv import config as config_lib
from jaxinv.runs import inversion


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--generators", type=int, nargs="+", default=[1, 4, 16])
  parser.add_argument("--samples", type=int, default=10_000)
  parser.add_argument("--batch", type=int, default=500)
  parser.add_argument("--impl", choices=["auto", "vmap", "map"], default="auto")
  args = parser.parse_args()
  jaxinv.cpu.enable()  # the CPU machinery the jaxinv command runs with (inert off a CPU)
  config = config_lib.default_config("mnist")
  generator = inversion.build_generator(config, data.info("mnist"))
  k = generator.num_classes
  z, p, y = jnp.zeros((2, generator.latent_dim)), jnp.full((2, k), 1 / k), jnp.zeros((2,), jnp.int32)
  labels = sampling.labels_for(args.samples // k, range(k))
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}  backend: "
        f"{jax.default_backend()}  impl: {args.impl}")
  print(f"{'generators':>10} {'images':>8} {'first call s':>12} {'wall s':>8} {'images/s':>10}")
  for count in args.generators:
    stacked = batch_inversion.stack(
        [generator.init(jax.random.key(seed), z, p, y) for seed in range(count)])
    start = time.perf_counter()
    batch_inversion.sample_many(generator, stacked, labels[:args.batch], jax.random.key(0),
                                batch_size=args.batch, impl=args.impl)  # compiles
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    images = batch_inversion.sample_many(generator, stacked, labels, jax.random.key(1),
                                         batch_size=args.batch, impl=args.impl)
    wall = time.perf_counter() - start
    assert images.shape[:2] == (count, len(labels)) and np.isfinite(images).all()
    print(f"{count:10d} {images.shape[0] * images.shape[1]:8d} {compile_s:12.2f} {wall:8.2f} "
          f"{images.shape[0] * images.shape[1] / wall:10.0f}")


if __name__ == "__main__":
  main()
