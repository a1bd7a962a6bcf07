"""Layers that XLA compiles well, computing the same functions as the standard ones.

XLA:CPU lowers `max_pool`'s backward pass to a slow select-and-scatter; a reshape
followed by a max reduction is the same function for non-overlapping windows and
differentiates through a plain reduction.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """2×2 max pooling with stride 2 ('VALID'), NHWC; odd trailing rows/cols are dropped."""
  n, h, w, c = x.shape
  h2, w2 = h // 2, w // 2
  x = x[:, : 2 * h2, : 2 * w2, :]
  return x.reshape(n, h2, 2, w2, 2, c).max(axis=(2, 4))


def upsample_nearest_2x(x: jnp.ndarray) -> jnp.ndarray:
  """Nearest-neighbour 2× upsampling, NHWC (the 'resize' half of a resize-convolution)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class RateDropout(nn.Module):
  """`flax.linen.Dropout` whose rate is a call argument that may be traced (so an
  ensemble can vmap over it). Same function and, under the same module name, the
  same random masks as `nn.Dropout` for a fixed rate."""

  @nn.compact
  def __call__(self, x, rate, deterministic: bool):
    if deterministic:
      return x
    keep = 1.0 - jnp.asarray(rate, jnp.float32)
    mask = jax.random.bernoulli(self.make_rng("dropout"), keep, x.shape)
    return jnp.where(mask, x / keep.astype(x.dtype), jnp.zeros_like(x))
