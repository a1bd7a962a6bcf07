"""Garbage for the OOD detector beyond the paper's noise seed and generator inversions
[ours] (docs/ood.md). All but the last are data-free.

  * `shape_images`: "dead leaves" images — random ellipses and rectangles of random
    intensity painted over each other on a random background, some slightly blurred.
    They have what white noise lacks and real objects have: large flat regions and
    sharp edges. No data is used.
  * `stroke_images`: random thin curves (cubic Bézier strokes) on a random background —
    line drawings, the shapes' thin counterpart.
  * `hard_negatives`: pixel-space inversion from such starts — Adam on each image's
    pixels until the classifier assigns it the given label. The results stay far from
    the data (the start's layout under stroke-like textures; docs/ood.md figure) while the
    classifier is confident about them: the inputs an OOD set exploits. Added to
    garbage, they teach the classifier to refuse them.
  * `shifted_images`: training images turned by ±90°, tile-shuffled or with their colour
    channels permuted — near-OOD photographs (on in configs/ood_cifar10.py; docs/ood.md).

All are deterministic functions of their seed / inputs.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinv import losses, ood

MAX_SHAPES = 8
SHAPE_RADIUS = (1.5, 12.0)  # half-widths in pixels at 28 px, scaled with the image size
BLUR_SIGMAS = (0.0, 0.0, 0.7, 1.5)  # drawn uniformly per image: half sharp, half blurred


def shape_images(seed, count: int, shape) -> np.ndarray:
  """`count` dead-leaves images of `shape` (H, W, C) in [-1, 1], float32.

  Each image: a background of uniform random intensity (per channel), then 1 to
  MAX_SHAPES shapes, each an axis-aligned rectangle or a rotated ellipse with a random
  centre (anywhere in the image), half-widths in SHAPE_RADIUS and a uniform random
  intensity per channel, later shapes covering earlier ones."""
  height, width, channels = shape
  rng = np.random.default_rng(seed)
  scale = min(height, width) / 28.0
  yy, xx = np.mgrid[:height, :width].astype(np.float64)
  images = np.broadcast_to(rng.uniform(-1, 1, (count, 1, 1, channels)),
                           (count, height, width, channels)).copy()
  shapes_per_image = rng.integers(1, MAX_SHAPES + 1, count)
  for slot in range(MAX_SHAPES):
    cy = rng.uniform(0, height, (count, 1, 1))
    cx = rng.uniform(0, width, (count, 1, 1))
    ry, rx = (rng.uniform(*SHAPE_RADIUS, (count, 1, 1)) * scale for _ in range(2))
    angle = rng.uniform(0, np.pi, (count, 1, 1))
    ellipse = rng.random((count, 1, 1)) < 0.5
    value = rng.uniform(-1, 1, (count, channels))
    u = ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)) / rx
    v = (-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)) / ry
    inside = np.where(ellipse, u * u + v * v <= 1,
                      (np.abs(xx - cx) <= rx) & (np.abs(yy - cy) <= ry))
    inside &= (slot < shapes_per_image)[:, None, None]
    images = np.where(inside[..., None], value[:, None, None, :], images)
  sigmas = rng.choice(BLUR_SIGMAS, count)
  for sigma in np.unique(sigmas):
    chosen = sigmas == sigma
    images[chosen] = ood.gaussian_blur(images[chosen], float(sigma) * scale)
  return np.clip(images, -1.0, 1.0).astype(np.float32)


def stroke_images(seed, count: int, shape, max_strokes: int = 3) -> np.ndarray:
  """`count` images of 1 to `max_strokes` random cubic Bézier strokes, `shape` (H, W, C) in
  [-1, 1], float32: a background of uniform random intensity (per channel), each stroke
  0.6–2 px in radius (at 28 px) with a uniform random intensity per channel. The thin,
  curved counterpart of `shape_images` (line drawings rather than regions)."""
  height, width, channels = shape
  rng = np.random.default_rng(seed)
  scale = min(height, width) / 28.0
  t = np.linspace(0.0, 1.0, 2 * max(height, width))[:, None]
  bernstein = np.concatenate([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3], 1)
  reach = int(np.ceil(2.0 * scale))
  offsets = np.stack(np.mgrid[-reach:reach + 1, -reach:reach + 1], -1).reshape(-1, 2)  # [O, 2]
  images = np.broadcast_to(rng.uniform(-1, 1, (count, 1, channels)),
                           (count, height * width, channels)).copy()
  strokes_per_image = rng.integers(1, max_strokes + 1, count)
  rows = np.arange(count)[:, None, None]
  for slot in range(max_strokes):
    controls = rng.uniform(0.07, 0.93, (count, 4, 2)) * (height, width)
    points = np.einsum("tk,nkd->ntd", bernstein, controls)  # [N, T, 2] along each stroke
    radius = rng.uniform(0.6, 2.0, count) * scale
    value = rng.uniform(-1, 1, (count, channels))
    # Pixels whose centre lies within the radius of a point on the curve.
    pixels = np.round(points)[:, :, None, :].astype(np.int64) + offsets  # [N, T, O, 2]
    near = ((pixels - points[:, :, None, :]) ** 2).sum(-1) <= radius[:, None, None] ** 2
    near &= (pixels[..., 0] >= 0) & (pixels[..., 0] < height) & (pixels[..., 1] >= 0)
    near &= (pixels[..., 1] < width) & (slot < strokes_per_image)[:, None, None]
    inside = np.zeros((count, height * width), bool)
    flat = np.clip(pixels[..., 0], 0, height - 1) * width + np.clip(pixels[..., 1], 0, width - 1)
    inside[np.broadcast_to(rows, flat.shape)[near], flat[near]] = True
    images = np.where(inside[..., None], value[:, None, :], images)
  return images.reshape(count, height, width, channels).astype(np.float32)


def hard_negatives(model, variables, starts, labels, *, steps: int, learning_rate: float,
                   batch_size: int = 500) -> np.ndarray:
  """`starts` [N, H, W, C] moved by `steps` Adam steps on the pixels (clipped to [-1, 1]
  after each) to lower the cross-entropy of `model` (a jaxinv classifier, inference
  mode) for `labels` [N]. Each image's update depends only on itself (a sum of
  per-image losses, element-wise Adam), so the batching does not change the result."""
  starts = np.asarray(starts, np.float32)
  labels = np.asarray(labels, np.int32)
  if len(starts) != len(labels):
    raise ValueError(f"hard_negatives: {len(starts)} starts but {len(labels)} labels.")
  optimise = _optimiser(model, int(steps))
  out = [np.asarray(optimise(variables, jnp.asarray(starts[i:i + batch_size]),
                             jnp.asarray(labels[i:i + batch_size]), jnp.float32(learning_rate)))
         for i in range(0, len(starts), batch_size)]
  return np.concatenate(out) if out else starts


@functools.lru_cache(maxsize=8)
def _optimiser(model, steps: int):
  def optimise(variables, images, labels, learning_rate):
    tx = optax.adam(learning_rate)

    def loss(x):
      logits = model.apply(variables, x, train=False)[0]
      return jnp.sum(jax.vmap(losses.cross_entropy)(logits, labels))

    def body(carry, _):
      x, opt_state = carry
      updates, opt_state = tx.update(jax.grad(loss)(x), opt_state)
      return (jnp.clip(x + updates, -1.0, 1.0), opt_state), None

    (images, _), _ = jax.lax.scan(body, (images, tx.init(images)), None, length=steps)
    return images

  return jax.jit(optimise)


# --- shifted in-distribution images [ours] ---
# Transforms that keep an image's local statistics and break what makes it a member of its
# class: rotated by ±90°, cut into a 4×4 grid of shuffled tiles, or with its colour channels
# permuted. As garbage they show the classifier near-OOD inputs (photographs, not noise),
# the idea behind rotation- and permutation-shifted negatives (Tack et al. 2020, "CSI").
SHIFT_TRANSFORMS = ("rotate90", "jigsaw", "permute_channels")
JIGSAW_GRID = 4
MIN_SHIFT_CHANGE = 0.1  # mean |Δpixel| in [-1, 1] units below which a shifted image is dropped
MAX_SHIFT_TRIES = 1000  # draws in a row that may fail MIN_SHIFT_CHANGE before the transform is refused


def _rotate90(image, rng):
  return np.rot90(image, k=int(rng.choice([1, 3])), axes=(0, 1))


def _jigsaw(image, rng):
  height, width, _ = image.shape
  th, tw = height // JIGSAW_GRID, width // JIGSAW_GRID
  tiles = [image[i * th:(i + 1) * th, j * tw:(j + 1) * tw]
           for i in range(JIGSAW_GRID) for j in range(JIGSAW_GRID)]
  order = rng.permutation(len(tiles))
  while np.all(order == np.arange(len(tiles))):
    order = rng.permutation(len(tiles))
  rows = [np.concatenate([tiles[order[i * JIGSAW_GRID + j]] for j in range(JIGSAW_GRID)], 1)
          for i in range(JIGSAW_GRID)]
  return np.concatenate(rows, 0)


def _permute_channels(image, rng):
  channels = image.shape[-1]
  order = rng.permutation(channels)
  while np.all(order == np.arange(channels)):
    order = rng.permutation(channels)
  return image[..., order]


_SHIFTS = {"rotate90": _rotate90, "jigsaw": _jigsaw, "permute_channels": _permute_channels}


def check_shift_transforms(transforms, image_shape) -> None:
  """A clear error before anything is drawn when a transform cannot shift images of
  `image_shape` (H, W, C)."""
  height, width, channels = image_shape
  unknown = set(transforms) - set(SHIFT_TRANSFORMS)
  if not transforms or unknown:
    raise ValueError(f"Shift transforms {tuple(transforms)!r}: name one or more of {SHIFT_TRANSFORMS}.")
  if "rotate90" in transforms and height != width:
    raise ValueError(f"Shift transform 'rotate90' needs square images; these are {height}×{width}. "
                     "Drop it from ood.shifted_transforms.")
  if "jigsaw" in transforms and (height % JIGSAW_GRID or width % JIGSAW_GRID):
    raise ValueError(f"Shift transform 'jigsaw' cuts a {JIGSAW_GRID}×{JIGSAW_GRID} grid; "
                     f"{height}×{width} images do not divide. Drop it from ood.shifted_transforms.")
  if "permute_channels" in transforms and channels < 2:
    raise ValueError("Shift transform 'permute_channels' needs colour images; these have one channel. "
                     "Drop it from ood.shifted_transforms.")


def shifted_images(seed, images, count: int, transforms=SHIFT_TRANSFORMS) -> np.ndarray:
  """`count` in-distribution `images` [N, H, W, C] shifted out of distribution: image i of
  the result is made by `transforms[i % len(transforms)]` from a randomly drawn image.
  Draws whose transform changes the image by less than MIN_SHIFT_CHANGE (mean |Δ|: a
  near-grey image with its channels permuted, a uniform one rotated) are skipped, so no
  image lands in garbage unchanged. float32, deterministic in `seed`."""
  images = np.asarray(images, np.float32)
  check_shift_transforms(tuple(transforms), images.shape[1:])
  if count and not len(images):
    raise ValueError("shifted_images: no in-distribution images to shift.")
  rng = np.random.default_rng(seed)
  out = np.empty((count, *images.shape[1:]), np.float32)
  for i in range(count):
    kind = transforms[i % len(transforms)]
    for _ in range(MAX_SHIFT_TRIES):
      source = images[rng.integers(len(images))]
      shifted = _SHIFTS[kind](source, rng)
      if np.mean(np.abs(shifted - source)) >= MIN_SHIFT_CHANGE:
        out[i] = shifted
        break
    else:
      raise ValueError(f"shifted_images: {kind!r} left {MAX_SHIFT_TRIES} "
                       "images in a row almost unchanged (are the images constant?). Drop it from "
                       "the transforms.")
  return out
