"""Generator inputs built to show what the conditioning does (figures of §5):
grids where every class shares the same latents, and interpolations between
two classes' conditioning vectors with a fixed latent. Pure and jit friendly.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv import conditioning
from jaxinv.sampling import DROPOUT_STREAM

_PAD = 128


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def fixed_latent_batch(key, num_classes: int, per_class: int, latent_dim: int, mode: str,
                       temperature: float = 1.0) -> dict:
  """`{"z", "p", "y"}` for a `[K, per_class]` grid flattened row-major: class k's row
  uses the same `per_class` latents as every other row."""
  key_z, key_p = jax.random.split(key)
  z = jax.random.normal(key_z, (per_class, latent_dim))
  labels = jnp.repeat(jnp.arange(num_classes, dtype=jnp.int32), per_class)
  return {"z": jnp.tile(z, (num_classes, 1)), "y": labels,
          "p": conditioning.vector_for_mode(key_p, labels, num_classes, mode, temperature)}


def interpolation_batch(key, pairs, steps: int, num_classes: int, latent_dim: int, mode: str,
                        temperature: float = 1.0) -> dict:
  """`{"z", "p", "y", "t"}` for `len(pairs)` rows of `steps` images flattened row-major.

  Row r holds one latent and walks `p = (1 − t)·p_a + t·p_b`, t = 0 … 1, between a
  conditioning vector for class a and one for class b (`pairs[r] = (a, b)`).
  `y = argmax p`: the label (`label` mode) and the hot matrix (`matrix` modes) switch
  once, where the vector's winner changes; only the vector changes gradually."""
  return _interpolation_batch(key, jnp.asarray(np.asarray(pairs, np.int32).reshape(-1, 2)), steps,
                              num_classes, latent_dim, mode, temperature)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _interpolation_batch(key, pairs, steps: int, num_classes: int, latent_dim: int, mode: str,
                         temperature: float) -> dict:
  t = jnp.linspace(0.0, 1.0, steps)
  key_z, key_a, key_b = jax.random.split(key, 3)
  z = jax.random.normal(key_z, (len(pairs), latent_dim))
  p_a = conditioning.vector_for_mode(key_a, pairs[:, 0], num_classes, mode, temperature)
  p_b = conditioning.vector_for_mode(key_b, pairs[:, 1], num_classes, mode, temperature)
  p = (1.0 - t)[None, :, None] * p_a[:, None] + t[None, :, None] * p_b[:, None]
  p = p.reshape(-1, num_classes)
  return {"z": jnp.repeat(z, steps, axis=0), "p": p, "y": jnp.argmax(p, -1).astype(jnp.int32),
          "t": jnp.tile(t, len(pairs))}


def generate(generator, variables, batch: dict, key, *, dropout: bool = True) -> np.ndarray:
  """Images for an explicit `{"z", "p", "y"}` batch, every image under the *same*
  dropout mask (so images differ only by their inputs: a column of a fixed-latent
  grid or a step of an interpolation changes nothing else)."""
  n = len(batch["y"])
  padded = -(-n // _PAD) * _PAD  # a few shapes, hence compiles, serve every figure
  z, p, y = (np.pad(np.asarray(batch[name]), [(0, padded - n)] + [(0, 0)] * (batch[name].ndim - 1))
             for name in ("z", "p", "y"))
  images = _generate_fn(generator, dropout)(variables, z, p, y, jax.random.fold_in(key, DROPOUT_STREAM))
  return np.asarray(images)[:n]


@functools.lru_cache(maxsize=16)
def _generate_fn(generator, dropout: bool):
  def one(variables, z, p, y, key):
    return generator.apply(variables, z[None], p[None], y[None], train=False, dropout=dropout,
                           rngs={"dropout": key})[0]
  # vmapped over examples only: the dropout key, hence the mask, is shared.
  return jax.jit(jax.vmap(one, in_axes=(None, 0, 0, 0, None)))
