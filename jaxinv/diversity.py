"""Diversity terms that act where the feature-cosine loss does not: on pixels, on
features of images of one class, and on how far the images move when the latent moves
(mode seeking, Mao et al. 2019).

Each compares only images generated for the same label (pairs of a batch with equal
`y`), written per pair and vmapped, and are plugged into `make_inversion(terms=...)`
as `TermContext -> scalar` functions. Norms are floored so that identical images or
latents give finite values and gradients.
"""

import jax
import jax.numpy as jnp

from jaxinv import losses

_EPS = 1e-8


def _same_label_pairs(labels):
  """[N, N] float mask of pairs i ≠ j with equal labels, and their count (≥ 1)."""
  same = (labels[:, None] == labels[None, :]) & ~jnp.eye(labels.shape[0], dtype=bool)
  mask = same.astype(jnp.float32)
  return mask, jnp.maximum(jnp.sum(mask), 1.0)


def pixel_cosine(images, labels):
  """Mean cosine similarity of mean-centred, flattened images over same-label pairs:
  near 1 when a class's images are copies of one another."""
  flat = images.reshape(images.shape[0], -1)
  return class_cosine(flat - jnp.mean(flat, axis=1, keepdims=True), labels)


def class_cosine(features, labels):
  """Mean cosine similarity of feature vectors over same-label pairs: the paper's
  cosine loss restricted to images of one class. Over a whole batch most pairs have
  different labels and are dissimilar anyway, so the batch mean barely sees a class
  whose images are copies of one another; this mean sees only such pairs."""
  mask, count = _same_label_pairs(labels)
  return jnp.sum(losses.pairwise_cosine_matrix(features) * mask) / count


def _distance(a, b):
  d = a - b
  return jnp.sqrt(jnp.maximum(jnp.mean(d * d), _EPS * _EPS))


def mode_seeking(images, latents, labels):
  """1 / (mean over same-label pairs of ‖x_i − x_j‖ / ‖z_i − z_j‖ + ε): small when images
  of one class move with their latents, large when the generator ignores z (mode
  collapse). RMS distances, so the value does not scale with image or latent size."""
  pair = jax.vmap(jax.vmap(lambda xa, za, xb, zb: _distance(xa, xb) / _distance(za, zb),
                           in_axes=(None, None, 0, 0)), in_axes=(0, 0, None, None))
  ratios = pair(images.reshape(images.shape[0], -1), latents, images.reshape(images.shape[0], -1),
                latents)
  mask, count = _same_label_pairs(labels)
  return 1.0 / (jnp.sum(ratios * mask) / count + 1e-3)


def pixel_cosine_term(ctx):
  """`TermContext -> scalar`: `pixel_cosine` of the generated batch."""
  return pixel_cosine(ctx.images, ctx.batch["y"])


def class_cosine_term(ctx):
  """`TermContext -> scalar`: `class_cosine` of the features the core diversity losses read."""
  return class_cosine(ctx.features, ctx.batch["y"])


def mode_seeking_term(ctx):
  """`TermContext -> scalar`: `mode_seeking` of the generated batch and its latents."""
  return mode_seeking(ctx.images, ctx.batch["z"], ctx.batch["y"])
