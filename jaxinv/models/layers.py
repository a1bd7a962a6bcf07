"""Layers that XLA compiles well, and the choice between Flax's convolutions and jaxinv.cpu's.

XLA:CPU lowers `max_pool`'s backward pass to a slow select-and-scatter; for
non-overlapping windows, picking each window's winner once and routing the gradient
to it is the same function with the same gradient and compiles to plain elementwise code.
`conv`, `upsample_conv` and `conv_transpose` build Flax's own layer, or with `jaxinv.cpu`
switched on and a CPU backend its hand-made form (same parameters, names and function).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import threefry2x32_p

from jaxinv.cpu import layers as cpu_layers
from jaxinv.cpu.fast_conv import resolve_impl

def _windows_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """x [n, h, w, c] → [n, h/2, 2, w/2, 2, c] (a reshape: no data moves); odd trailing
  rows/cols are dropped."""
  n, h, w, c = x.shape
  return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)


_WINDOW_INDEX = ((0, 0), (0, 1), (1, 0), (1, 1))  # row-major, the order ties are broken in


def _max_pool_2x2_and_winner(x):
  """Each window's maximum, and the index (into _WINDOW_INDEX) of its first maximal element."""
  windows = _windows_2x2(x)
  best = windows[:, :, 0, :, 0]
  winner = jnp.zeros(best.shape, jnp.int8)
  for index, (dy, dx) in enumerate(_WINDOW_INDEX[1:], start=1):
    candidate = windows[:, :, dy, :, dx]
    better = candidate > best  # strictly: ties stay with the earlier element, as in Flax
    best = jnp.where(better, candidate, best)
    winner = jnp.where(better, jnp.int8(index), winner)
  return best, winner


@jax.custom_jvp
def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """2×2 max pooling with stride 2 ('VALID'), NHWC; odd trailing rows/cols are dropped.

  The same function and derivatives as `flax.linen.max_pool(x, (2, 2), (2, 2))` (the
  gradient goes to the first maximal element of each window). The winner of each window
  is found once, by comparisons, and the derivative (a custom JVP, so forward and reverse
  mode of any order work) reads the tangent at the winner; reverse mode transposes that
  into one elementwise pass over x's own layout. A `max` reduction instead routes its
  gradient by comparing recomputed values with the maximum for equality, which XLA's
  fusion can break (measured in float64: gradients 1.9e3 off at a scale of 4.5e3 after
  conv→batch norm→pool twice). Measured on the 2-core CPU VM with another job running,
  batch 256, 28×28×32 after a scale and LeakyReLU: forward 3.8 ms (Flax 11.7, the
  earlier argmax-and-mask form 36), forward and backward 44–56 ms (Flax 309,
  argmax-and-mask 70–81)."""
  return _max_pool_2x2_and_winner(x)[0]


@max_pool_2x2.defjvp
def _max_pool_2x2_jvp(primals, tangents):
  (x,), (tangent,) = primals, tangents
  best, winner = _max_pool_2x2_and_winner(x)
  index = jnp.asarray([[2 * dy + dx for dx in (0, 1)] for dy in (0, 1)], jnp.int8).reshape(1, 1, 2, 1, 2, 1)
  picked = jnp.where(winner[:, :, None, :, None] == index, _windows_2x2(tangent), 0)
  return best, jnp.sum(picked, axis=(2, 4))


MASK_BITS = 16  # dropout draws keep/drop from 16-bit fields: rates are multiples of 2^-16


def keep_mask(key, keep, shape) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(mask, p): a boolean mask over `shape`, each entry independently True with
  probability p = `keep` (may be traced) rounded to a multiple of 2^-16.

  Four decisions per Threefry-2x32 hash (both 32-bit output words, each split into two
  16-bit fields) instead of `jax.random.bernoulli`'s one per hash: on XLA:CPU the hash is
  most of dropout's cost (2-core AMD EPYC, 64×28×28×128 floats: bernoulli dropout 145 ms,
  this 31 ms, the division alone 17 ms). Counters are (example, field group), so the
  mask of a batch sharded over its first axis is computed where each example lives.
  A key of another shape than Threefry's two words falls back to `jax.random.bernoulli`."""
  keep = jnp.asarray(keep, jnp.float32)
  data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
  if data.shape != (2,) or len(shape) < 1:
    return jax.random.bernoulli(key, keep, shape), keep
  levels = 1 << MASK_BITS
  threshold = jnp.round(keep * levels).astype(jnp.int32)
  per_example = math.prod(shape[1:])
  groups = -(-per_example // 4)
  examples = lax.broadcasted_iota(jnp.uint32, (shape[0], groups), 0)
  group = lax.broadcasted_iota(jnp.uint32, (shape[0], groups), 1)
  words = jnp.stack(threefry2x32_p.bind(data[0], data[1], examples, group), axis=-1)
  fields = lax.bitcast_convert_type(words, jnp.uint16).reshape(shape[0], 4 * groups)
  mask = fields[:, :per_example].reshape(shape).astype(jnp.int32) < threshold
  return mask, threshold.astype(jnp.float32) / levels


class RateDropout(nn.Module):
  """`flax.linen.Dropout` whose rate is a call argument that may be traced (so an
  ensemble can vmap over it), with masks from `keep_mask`: each unit is kept with
  probability 1 − rate rounded to a multiple of 2^-16 and scaled by the inverse of that
  probability (so the expected output is the input exactly), as nn.Dropout does with its
  own float32 rounding of the rate; the random masks are not nn.Dropout's."""

  @nn.compact
  def __call__(self, x, rate, deterministic: bool):
    if deterministic:
      return x
    mask, keep = keep_mask(self.make_rng("dropout"), 1.0 - jnp.asarray(rate, jnp.float32), x.shape)
    scale = 1.0 / jnp.maximum(keep, 1.0 / (1 << MASK_BITS))  # keep = 0 drops everything anyway
    return jnp.where(mask, x * scale.astype(x.dtype), jnp.zeros_like(x))


def conv(x, features: int, kernel_size=(3, 3), *, name: str, padding="SAME", use_bias: bool = True,
         impl: str = "auto", dtype=None):
  """A stride-1 `nn.Conv(features, kernel_size, padding=padding)` applied to x; "auto" on
  one CPU device with `jaxinv.cpu` on: `cpu.layers.Conv` (blocked kernel gradient)."""
  if resolve_impl(impl, on_cpu="blocked") == "xla":
    return nn.Conv(features, kernel_size, padding=padding, use_bias=use_bias, dtype=dtype,
                   param_dtype=jnp.float32, name=name)(x)
  return cpu_layers.Conv(features, kernel_size, padding=padding, use_bias=use_bias, impl=impl,
                         dtype=dtype, name=name)(x)


def upsample_conv(x, features: int, *, name: str, use_bias: bool = False, impl: str = "auto", dtype=None):
  """`nn.Conv(features, (3, 3), padding="SAME")` of the nearest-upsampled x; with
  `jaxinv.cpu` on, `cpu.layers.UpsampleConv` (four 2×2 convolutions of x)."""
  if resolve_impl(impl, on_cpu="blocked") == "xla":
    return nn.Conv(features, (3, 3), padding="SAME", use_bias=use_bias, dtype=dtype,
                   param_dtype=jnp.float32, name=name)(cpu_layers.upsample_nearest_2x(x))
  return cpu_layers.UpsampleConv(features, use_bias=use_bias, impl=impl, dtype=dtype, name=name)(x)


def conv_transpose(x, features: int, kernel_size, *, name: str, strides=(1, 1), padding="SAME",
                   use_bias: bool = True, impl: str = "auto", dtype=None, constant_channels: int = 0):
  """`nn.ConvTranspose(features, kernel_size, strides, padding)` applied to x; with
  `jaxinv.cpu` on, `cpu.layers.SubPixelConvTranspose` (stride-1 convolutions, im2col
  kernel gradient), which computes no input gradient for the last `constant_channels`."""
  if resolve_impl(impl) == "xla":
    return nn.ConvTranspose(features, kernel_size, strides, padding=padding, use_bias=use_bias,
                            dtype=dtype, param_dtype=jnp.float32, name=name)(x)
  return cpu_layers.SubPixelConvTranspose(features, kernel_size, strides, padding, use_bias, dtype=dtype,
                                          impl=impl, constant_channels=constant_channels, name=name)(x)


def gaussian_kernel(sigma: float) -> np.ndarray:
  """The normalised 1-D Gaussian of std `sigma` pixels, truncated at ±ceil(2σ)."""
  radius = max(1, int(np.ceil(2.0 * sigma)))
  taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
  return (taps / taps.sum()).astype(np.float32)


def gaussian_blur(x, sigma: float):
  """Separable Gaussian blur of `[B, H, W, C]` maps, each channel on its own; edges
  padded by repetition (a border does not darken or brighten the image)."""
  taps = jnp.asarray(gaussian_kernel(sigma), x.dtype)
  radius = taps.shape[0] // 2
  padded = jnp.pad(x, ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="edge")
  h, w = x.shape[1:3]
  rows = sum(taps[i] * padded[:, i:i + h, :, :] for i in range(taps.shape[0]))
  return sum(taps[i] * rows[:, :, i:i + w, :] for i in range(taps.shape[0]))
