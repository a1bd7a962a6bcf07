"""Image priors usable as extra inversion terms (method notes §7; issues on
reconstruction and faithful inversion).

Each prior is written for one image `[H, W, C]` and vmapped over the batch; the
term functions take a `steps.TermContext` and return the batch mean, so they plug
into `steps.make_inversion_step(..., extra_terms=...)`. Images live in [-1, 1].
"""

import jax
import jax.numpy as jnp

from jaxinv import feature_stats


def total_variation(image):
  """Squared neighbour differences: mean over vertical pairs + mean over horizontal pairs."""
  dy = image[1:, :, :] - image[:-1, :, :]
  dx = image[:, 1:, :] - image[:, :-1, :]
  return jnp.mean(dy * dy) + jnp.mean(dx * dx)


def l2(image):
  """Mean squared pixel value."""
  return jnp.mean(image * image)


def pixel_range(image, low: float = -1.0, high: float = 1.0):
  """Mean hinge outside [low, high]: 0 inside, the distance to the range outside."""
  return jnp.mean(jax.nn.relu(image - high) + jax.nn.relu(low - image))


def ink(image, minimum: float = 0.1):
  """Hinge below a minimum ink: max(0, minimum − mean((x + 1) / 2)). Images in [-1, 1]
  with a background of −1 (MNIST-like): near-blank images cost, inked ones do not."""
  return jax.nn.relu(minimum - jnp.mean((image + 1.0) / 2.0))


def sparsity(image):
  """Mean ink `mean((x + 1) / 2)`: an L1 pull of every pixel towards the background −1
  (images in [-1, 1], MNIST-like). Balanced by the classifier's terms, it leaves the
  strokes that carry the class and clears the texture around them."""
  return jnp.mean((image + 1.0) / 2.0)


def border_ink(image, width: int = 4):
  """Mean ink `(x + 1) / 2` of the pixels within `width` of the image's edge: MNIST-like
  data centre the object in a frame of background, so ink there costs (it keeps strokes
  off the frame, where a shape cut by the edge reads as another class)."""
  h, w = image.shape[:2]
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  edge = (rows < width) | (rows >= h - width) | (cols < width) | (cols >= w - width)
  ink_map = jnp.mean((image + 1.0) / 2.0, axis=-1)
  return jnp.sum(jnp.where(edge, ink_map, 0.0)) / jnp.sum(edge)


def saturation(image):
  """Mean `1 − x²`: 0 at the background (−1) and at full ink (+1), largest for mid grey.
  Pen strokes on paper (MNIST-like data) are mostly one or the other, so faint, grey
  strokes and haze cost; the sparsity prior alone shrinks a thin class (a "1") to a
  faint trace instead of a solid stroke."""
  return jnp.mean(1.0 - image * image)


IMAGE_PRIORS = {"total_variation": total_variation, "l2": l2, "pixel_range": pixel_range,
                "ink": ink, "sparsity": sparsity, "border": border_ink, "saturation": saturation}


def image_prior_term(prior):
  """A `TermContext -> scalar` term: `prior` averaged over the generated batch."""
  return lambda ctx: jnp.mean(jax.vmap(prior)(ctx.images))


# Priors that read more than the images (the classifier's batch-norm inputs and statistics).
MODEL_PRIORS = {"feature_statistics": feature_stats.feature_statistics_term}
