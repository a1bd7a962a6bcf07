"""Is a lone ensemble member's convolution leaving the machine idle? Per-layer evidence.

    python benchmarks/member_conv_speed.py [--members 8] [--batch 16]

For the MNIST generator's three 3×3 'SAME' convolutions (configs/mnist.py, width 32),
times forward + both gradients (median of --repeats, after one warm-up) of:
- one member's convolution at --batch ("one"),
- S members' convolutions, each with its own kernel, vmapped ("vmap": JAX turns
  them into one grouped convolution) and traced one after another in one program
  ("unrolled", what `ensemble.impl="auto"` picks on a CPU),
- one convolution over all S·B images with one shared kernel ("shared"): the best
  case batching could reach, since it has the FLOPs of S members and no grouping.
If "shared" / "one" is about S, one member's convolution already runs at the rate a
bigger batch gets, so S members cannot cost much less than S times one.
Both `fast_conv` implementations are timed ("xla": lax.conv_general_dilated;
"im2col": `jaxinv.cpu.fast_conv.conv2d`'s custom backward pass).
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax

from jaxinv.cpu import fast_conv

LAYERS = ((28, 64, 32), (14, 65, 64), (28, 32, 1))  # (size, in channels, out channels)


def _xla_conv(x, kernel):
  return lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _im2col_conv(x, kernel):
  return fast_conv.conv2d(x, kernel, "SAME", "im2col")


def _median_ms(fn, *args, repeats: int) -> float:
  fn = jax.jit(fn)
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1000 * statistics.median(times)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--members", type=int, default=8)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  s, b = args.members, args.batch
  print(f"device: {jax.devices()[0].device_kind}  members {s}  batch {b}  (ms, forward + both gradients)")
  print(f"{'layer':>14} {'impl':>7} {'one':>7} {'vmap':>7} {'unrolled':>8} {'shared':>7} "
        f"{'unrolled/one':>12} {'shared/one':>10}")
  for size, c_in, c_out in LAYERS:
    kx, kk = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (s, b, size, size, c_in))
    kernel = 0.05 * jax.random.normal(kk, (s, 3, 3, c_in, c_out))
    for name, conv in (("xla", _xla_conv), ("im2col", _im2col_conv)):
      grad = jax.grad(lambda x, k, conv=conv: jnp.sum(jnp.tanh(conv(x, k))), argnums=(0, 1))
      one = _median_ms(grad, x[0], kernel[0], repeats=args.repeats)
      vmapped = _median_ms(jax.vmap(grad), x, kernel, repeats=args.repeats)
      unrolled = _median_ms(lambda x, k, grad=grad: [grad(x[i], k[i]) for i in range(s)], x, kernel,
                            repeats=args.repeats)
      shared = _median_ms(grad, x.reshape(s * b, size, size, c_in), kernel[0], repeats=args.repeats)
      print(f"{f'{size}px {c_in}->{c_out}':>14} {name:>7} {one:7.1f} {vmapped:7.1f} {unrolled:8.1f} "
            f"{shared:7.1f} {unrolled / one:12.2f} {shared / one:10.2f}")


if __name__ == "__main__":
  main()
