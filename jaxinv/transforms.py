"""Random small input transforms applied between generator (or pixels) and classifier,
inside the jitted step: an image the classifier accepts only at one exact position,
size or orientation is an adversarial pattern, not a digit (DeepInversion's jitter
and flips; method notes §7).

Each image gets its own draw from the step's key, so a step is a function of its key.
Images live in [-1, 1] with a background of −1; pixels moved in from outside the
frame are background.
"""

import jax
import jax.numpy as jnp


def random_affine(image, key, *, jitter: float, scale: float, flip: bool):
  """One `[H, W, C]` image shifted by up to `jitter` pixels in each direction, scaled by a
  factor in [1 − scale, 1 + scale] about its centre (bilinear) and, if `flip`, mirrored
  left–right with probability ½."""
  k_scale, k_shift, k_flip = jax.random.split(key, 3)
  size = jnp.array(image.shape[:2], jnp.float32)
  factor = jax.random.uniform(k_scale, (), minval=1.0 - scale, maxval=1.0 + scale)
  shift = jax.random.uniform(k_shift, (2,), minval=-jitter, maxval=jitter)
  # scale_and_translate maps input coordinate u to factor·u + translation: keep the centre.
  translation = (1.0 - factor) * size / 2.0 + shift
  # Shifted by +1 so that the zeros scale_and_translate fills in become background (−1).
  out = jax.image.scale_and_translate(image + 1.0, image.shape, (0, 1), jnp.stack([factor, factor]),
                                      translation, method="linear", antialias=False) - 1.0
  if flip:
    out = jnp.where(jax.random.bernoulli(k_flip), out[:, ::-1, :], out)
  return out


def gaussian_noise(images, key, max_std: float):
  """Gaussian noise shaped like `images [B, ...]`, of a standard deviation drawn uniformly
  from [0, max_std] per image (so clean and noisy images both occur)."""
  k_sigma, k_noise = jax.random.split(key)
  sigma = jax.random.uniform(k_sigma, (images.shape[0],) + (1,) * (images.ndim - 1), maxval=max_std)
  return sigma * jax.random.normal(k_noise, images.shape, images.dtype)


def make_input_transform(*, jitter: float = 0.0, scale: float = 0.0, flip: bool = False,
                         noise: float = 0.0):
  """`(images [B,H,W,C], key) -> images` with one `random_affine` draw per image, then, with
  `noise` > 0, Gaussian noise of a standard deviation drawn uniformly from [0, noise] per
  image (so clean and noisy images both occur; not clipped, so the gradient reaches every
  pixel); None when every setting is off (the step then skips the transform).

  Noise asks for evidence that survives it: a fine texture the classifier reads as a
  class is drowned, a bold stroke is not."""
  if not jitter and not scale and not flip and not noise:
    return None

  def transform(images, key):
    if jitter or scale or flip:
      keys = jax.random.split(key, images.shape[0])
      images = jax.vmap(lambda x, k: random_affine(x, k, jitter=jitter, scale=scale, flip=flip))(
          images, keys)
    if noise:
      # A key of its own: the affine draws stay those of a run without noise.
      images = images + gaussian_noise(images, jax.random.fold_in(key, 1), noise)
    return images

  return transform

def make_augmentation(*, flip: bool = False, translate: int = 0, noise_std: float = 0.0):
  """Training-data augmentation `(images [B,H,W,C], key) -> images`, or None when off:
  a random shift of up to `translate` pixels in each direction (a crop of the image
  padded by reflection, so no blank border appears); if `flip`, a left–right mirror
  with probability ½; with `noise_std` > 0, Gaussian noise of a standard deviation drawn
  uniformly from [0, noise_std] per image (so clean and noisy images both occur), the
  result clipped to [-1, 1]. One draw per image."""
  if not flip and not translate and not noise_std:
    return None

  def augment(images, key):
    k_shift, k_flip = jax.random.split(key)
    n, h, w, _ = images.shape
    if translate:
      padded = jnp.pad(images, ((0, 0), (translate, translate), (translate, translate), (0, 0)),
                       mode="reflect")
      offsets = jax.random.randint(k_shift, (n, 2), 0, 2 * translate + 1)
      images = jax.vmap(lambda x, o: jax.lax.dynamic_slice(x, (o[0], o[1], 0), (h, w, x.shape[-1])))(
          padded, offsets)
    if flip:
      mirrored = jax.random.bernoulli(k_flip, 0.5, (n, 1, 1, 1))
      images = jnp.where(mirrored, images[:, :, ::-1, :], images)
    if noise_std:
      # Keys of their own: shifts and flips stay those of a run without noise.
      images = jnp.clip(images + gaussian_noise(images, jax.random.fold_in(key, 2), noise_std),
                        -1.0, 1.0)
    return images

  return augment
