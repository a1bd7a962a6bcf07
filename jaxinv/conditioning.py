"""Conditioning inputs for the generator (method notes §2).

* soft vectors: `v ~ N(0, I_K)`, `p = softmax(v / T)`, label `y = argmax p`; the
  temperature T is 1 in the paper, below 1 the vectors are sharper (the label's entry
  larger, the others still random);
* soft vectors for requested labels: the largest entry of `v` is swapped into
  position `y`, so `argmax p == y` holds for every draw (ties broken towards `y`);
* one-hot vectors;
* K×K "hot" matrices built from `y`, injected as an extra generator channel.

All functions are pure and jit/vmap friendly.
"""

import jax
import jax.numpy as jnp

MODES = ("label", "vector", "matrix", "vector_matrix", "one_hot")
HOT_PATTERNS = ("cross", "row", "diag")


def random_soft(key, batch_size: int, num_classes: int, temperature: float = 1.0):
  """Random soft vectors `softmax(v / temperature)` and their argmax labels: `(p [B,K], y [B])`."""
  v = jax.random.normal(key, (batch_size, num_classes))
  p = jax.nn.softmax(v / temperature, axis=-1)
  return p, jnp.argmax(p, axis=-1).astype(jnp.int32)


def _soft_for_label(key, label, num_classes: int, temperature: float):
  v = jax.random.normal(key, (num_classes,))
  top = jnp.argmax(v)
  # Swap the largest entry into position `label`: the distribution of the sorted
  # entries is unchanged, only which class wins is fixed.
  v_label, v_top = v[label], v[top]
  v = v.at[top].set(v_label).at[label].set(v_top)
  p = jax.nn.softmax(v / temperature)
  # float32 softmax can map two close logits to the same value; make every
  # other entry strictly smaller so argmax (which breaks ties by index) is `label`.
  below = jnp.nextafter(p[label], jnp.zeros_like(p[label]))
  is_label = jnp.arange(num_classes) == label
  return jnp.where(is_label, p, jnp.minimum(p, below))


def soft_for_labels(key, labels, num_classes: int, temperature: float = 1.0):
  """Soft vectors `p [B,K]` with `argmax p[i] == labels[i]` guaranteed."""
  keys = jax.random.split(key, labels.shape[0])
  return jax.vmap(_soft_for_label, in_axes=(0, 0, None, None))(keys, labels, num_classes, temperature)


def one_hot(labels, num_classes: int):
  return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)


def _hot_matrix(label, num_classes: int, pattern: str):
  i = jnp.arange(num_classes)[:, None]
  j = jnp.arange(num_classes)[None, :]
  if pattern == "row":
    hot = jnp.broadcast_to(i == label, (num_classes, num_classes))
  elif pattern == "cross":
    hot = (i == label) | (j == label)
  elif pattern == "diag":
    # The diagonal shifted right by `label` (wrapping): K ones, one per row,
    # a distinct pattern per class.
    hot = j == (i + label) % num_classes
  else:
    raise ValueError(f"Unknown hot-matrix pattern {pattern!r}; choose one of {HOT_PATTERNS}.")
  return hot.astype(jnp.float32)


def hot_matrices(labels, num_classes: int, pattern: str = "cross"):
  """K×K×1 hot matrices for a batch of labels: `[B, K, K, 1]`."""
  mats = jax.vmap(_hot_matrix, in_axes=(0, None, None))(labels, num_classes, pattern)
  return mats[..., None]


def vector_for_mode(key, labels, num_classes: int, mode: str, temperature: float = 1.0):
  """The conditioning vector the generator sees for requested labels."""
  if mode == "one_hot":
    return one_hot(labels, num_classes)
  return soft_for_labels(key, labels, num_classes, temperature)


def sample_batch(key, batch_size: int, num_classes: int, latent_dim: int, mode: str,
                 temperature: float = 1.0):
  """A random conditioning batch `{"z", "p", "y"}` for one inversion step.

  In `one_hot` mode labels are uniform and `p = onehot(y)`; otherwise `p` is a
  random soft vector and `y` its argmax (uniform in expectation)."""
  if mode not in MODES:
    raise ValueError(f"Unknown conditioning mode {mode!r}; choose one of {MODES}.")
  key_z, key_p = jax.random.split(key)
  z = jax.random.normal(key_z, (batch_size, latent_dim))
  if mode == "one_hot":
    y = jax.random.randint(key_p, (batch_size,), 0, num_classes, dtype=jnp.int32)
    p = one_hot(y, num_classes)
  else:
    p, y = random_soft(key_p, batch_size, num_classes, temperature)
  return {"z": z, "p": p, "y": y}


def batch_for_labels(key, labels, num_classes: int, latent_dim: int, mode: str,
                     temperature: float = 1.0):
  """A conditioning batch `{"z", "p", "y"}` for requested labels (sampling, grids)."""
  if mode not in MODES:
    raise ValueError(f"Unknown conditioning mode {mode!r}; choose one of {MODES}.")
  labels = jnp.asarray(labels, jnp.int32)
  key_z, key_p = jax.random.split(key)
  z = jax.random.normal(key_z, (labels.shape[0], latent_dim))
  return {"z": z, "p": vector_for_mode(key_p, labels, num_classes, mode, temperature), "y": labels}
