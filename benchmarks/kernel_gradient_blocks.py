"""Kernel gradient of the 3×3 'SAME' convolutions of the paper CNN and the resize generators:
XLA's own against the same sums in batch blocks (`jaxinv.cpu.fast_conv` "blocked"), and
PyTorch's `conv2d_weight` when torch is installed — the figures behind
`fast_conv.KERNEL_GRADIENT_BATCH`. Median ms of --repeats calls after one warm-up.

    python benchmarks/kernel_gradient_blocks.py [--batches 64 256] [--blocks 4 8 16 32 64]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.cpu import fast_conv

# name: (pixels per side, input channels, output channels)
LAYERS = {"classifier conv0": (28, 1, 32), "classifier conv1": (14, 32, 64),
          "light up0": (14, 65, 64), "light up1": (28, 64, 32), "light to_image": (28, 32, 1),
          "fast up0": (14, 33, 32), "fast up1": (28, 32, 16)}


def median_ms(fn, repeats):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def kernel_gradient(impl, block=None):
  conv = lambda x, w: fast_conv.conv2d(x, w, "SAME", impl=impl, kernel_gradient_block=block)
  return jax.jit(lambda x, w, g: jax.vjp(lambda w: conv(x, w), w)[1](g)[0])


def torch_kernel_gradient_ms(batch, pixels, c_in, c_out, repeats):
  try:
    import torch
  except ImportError:
    return None
  x, g = torch.randn(batch, c_in, pixels, pixels), torch.randn(batch, c_out, pixels, pixels)
  return median_ms(lambda: torch.nn.grad.conv2d_weight(x, (c_out, c_in, 3, 3), g, padding=1), repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
  parser.add_argument("--blocks", type=int, nargs="+", default=[4, 8, 16, 32, 64])
  parser.add_argument("--repeats", type=int, default=9)
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}")
  print("| layer (px, in → out) | batch | XLA's own | " + " | ".join(f"blocks of {b}" for b in args.blocks)
        + " | torch |")
  print("|---" * (4 + len(args.blocks)) + "|")
  key_x, key_w, key_g = jax.random.split(jax.random.key(0), 3)
  for batch in args.batches:
    for name, (pixels, c_in, c_out) in LAYERS.items():
      x = jax.random.normal(key_x, (batch, pixels, pixels, c_in))
      w = 0.1 * jax.random.normal(key_w, (3, 3, c_in, c_out))
      g = jax.random.normal(key_g, (batch, pixels, pixels, c_out))
      reference = kernel_gradient("xla")
      expected = reference(x, w, g)
      row = [f"{name} ({pixels}, {c_in} → {c_out})", str(batch),
             f"{median_ms(lambda: jax.block_until_ready(reference(x, w, g)), args.repeats):.1f}"]
      for block in args.blocks:
        if block >= batch:
          row.append("—")
          continue
        blocked = kernel_gradient("blocked", block)
        error = float(jnp.abs(blocked(x, w, g) - expected).max() / jnp.abs(expected).max())
        if error > 1e-4:
          raise AssertionError(f"{name}, blocks of {block}: relative error {error:.2e} against XLA's")
        row.append(f"{median_ms(lambda: jax.block_until_ready(blocked(x, w, g)), args.repeats):.1f}")
      torch_ms = torch_kernel_gradient_ms(batch, pixels, c_in, c_out, args.repeats)
      row.append("—" if torch_ms is None else f"{torch_ms:.1f}")
      print("| " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
  main()
