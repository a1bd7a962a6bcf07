"""Generate images for requested labels from a trained generator.

Batch norm uses its running statistics, so an image does not depend on the rest
of its batch. Dropout stays active by default (method notes §4: G is used as it
was trained, dropout on): the generator learns to be right *under* its dropout
noise, and switching it off moves the images off that distribution — measured on
MNIST, class 8's target accuracy fell from 100 % to 85 % without dropout.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv import conditioning

DROPOUT_STREAM = 0x64726f70  # folded into a chunk's key for its dropout masks


def labels_for(num_per_class: int, classes) -> np.ndarray:
  """`[0,0,…,1,1,…]`: `num_per_class` copies of each requested class."""
  return np.repeat(np.asarray(classes, np.int32), num_per_class)


def sample(generator, variables, labels, key, *, batch_size: int = 500,
           dropout: bool = True) -> np.ndarray:
  """Images `[N, H, W, C]` in [-1, 1] for `labels` (one compiled function for every chunk).

  Chunk `i` draws its latents and vectors from `fold_in(key, i)`, so the images
  for a given key do not depend on how many are requested after them."""
  num_classes, latent_dim, mode = generator.num_classes, generator.latent_dim, generator.mode
  labels = check_labels(labels, num_classes)
  generate = _generate_fn(generator, latent_dim, mode, num_classes, dropout)
  chunks = []
  for i, start in enumerate(range(0, len(labels), batch_size)):
    chunk = labels[start:start + batch_size]
    padded = np.pad(chunk, (0, batch_size - len(chunk)))  # one shape: one compile
    images = generate(variables, jnp.asarray(padded), jax.random.fold_in(key, i))
    chunks.append(np.asarray(images)[:len(chunk)])
  if not chunks:
    return np.zeros((0, *generator.image_shape), np.float32)
  return np.concatenate(chunks)


def check_labels(labels, num_classes: int) -> np.ndarray:
  labels = np.asarray(labels, np.int32)
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"Requested labels must lie in [0, {num_classes - 1}]; got "
                     f"{sorted(set(labels[(labels < 0) | (labels >= num_classes)].tolist()))}.")
  return labels


@functools.lru_cache(maxsize=16)
def _generate_fn(generator, latent_dim: int, mode: str, num_classes: int, dropout: bool):
  @jax.jit
  def generate(variables, labels, key):
    batch = conditioning.batch_for_labels(key, labels, num_classes, latent_dim, mode,
                                          generator.temperature)
    return generator.apply(variables, batch["z"], batch["p"], batch["y"], train=False,
                           dropout=dropout, rngs={"dropout": jax.random.fold_in(key, DROPOUT_STREAM)})
  return generate
