"""The OOD detector's extra garbage: shape and stroke images, pixel-space hard negatives."""

import jax
import numpy as np
import pytest

from jaxinv import garbage_sources, losses, ood
from jaxinv.models import classifiers


def test_shape_images_are_seeded_in_range_and_made_of_flat_regions():
  a = garbage_sources.shape_images([0, 1], 200, (28, 28, 1))
  assert a.shape == (200, 28, 28, 1) and a.dtype == np.float32
  np.testing.assert_array_equal(a, garbage_sources.shape_images([0, 1], 200, (28, 28, 1)))
  assert not np.array_equal(a, garbage_sources.shape_images([0, 2], 200, (28, 28, 1)))
  assert a.min() >= -1.0 and a.max() <= 1.0
  assert len(np.unique(a.reshape(200, -1), axis=0)) == 200  # no two alike
  # Flat regions: most horizontal neighbours are (nearly) equal, unlike white noise's.
  flat = lambda x: np.mean(np.abs(np.diff(x, axis=2)) < 0.02)
  assert flat(a) > 0.7
  assert flat(ood.gaussian_images(0, 200, (28, 28, 1), 0.5)) < 0.1
  # Intensities cover the range (dark and bright shapes and backgrounds).
  assert np.mean(a < -0.5) > 0.1 and np.mean(a > 0.5) > 0.1
  colour = garbage_sources.shape_images(3, 20, (32, 32, 3))
  assert colour.shape == (20, 32, 32, 3)
  assert not np.allclose(colour[..., 0], colour[..., 1])  # channels drawn separately


def test_stroke_images_are_seeded_thin_curves_on_a_flat_background():
  a = garbage_sources.stroke_images([0, 1], 200, (28, 28, 1))
  assert a.shape == (200, 28, 28, 1) and a.dtype == np.float32
  np.testing.assert_array_equal(a, garbage_sources.stroke_images([0, 1], 200, (28, 28, 1)))
  assert a.min() >= -1.0 and a.max() <= 1.0
  background = a == a[:, :1, :1]  # the corner is almost always background
  share = background.reshape(200, -1).mean(1)
  assert 0.6 < np.median(share) < 0.99  # thin: most of each image is background, not all
  assert np.mean(share < 1.0) > 0.95  # (nearly) every image has a stroke
  assert len(np.unique(a.reshape(200, -1), axis=0)) == 200
  # A stroke is a connected curve, not scattered dots: its pixels have stroke neighbours.
  stroke = ~background[..., 0]
  neighbours = stroke[:, 1:, :] & stroke[:, :-1, :]
  assert neighbours.sum() > 0.5 * stroke[:, 1:, :].sum()
  assert garbage_sources.stroke_images(3, 4, (32, 32, 3)).shape == (4, 32, 32, 3)


@pytest.fixture(scope="module")
def small_classifier():
  model = classifiers.build_classifier("mlp", 4, hidden=(32,))
  variables = model.init(jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32))
  return model, variables


def _ce(model, variables, images, labels):
  logits = model.apply(variables, images, train=False)[0]
  return np.asarray(jax.vmap(losses.cross_entropy)(logits, labels))


def test_hard_negatives_are_assigned_their_label_and_stay_in_range(small_classifier):
  model, variables = small_classifier
  starts = garbage_sources.shape_images(0, 32, (8, 8, 1))
  labels = np.arange(32) % 4
  before = _ce(model, variables, starts, labels)
  moved = garbage_sources.hard_negatives(model, variables, starts, labels, steps=20, learning_rate=0.05)
  after = _ce(model, variables, moved, labels)
  assert moved.shape == starts.shape and np.abs(moved).max() <= 1.0
  assert np.all(after < before)  # every image, not just the mean
  logits = model.apply(variables, moved, train=False)[0]
  assert np.mean(np.asarray(logits).argmax(-1) == labels) > np.mean(
      np.asarray(model.apply(variables, starts, train=False)[0]).argmax(-1) == labels)
  assert not np.allclose(moved, starts)


def test_hard_negatives_do_not_depend_on_the_batching(small_classifier):
  model, variables = small_classifier
  starts = garbage_sources.shape_images(1, 12, (8, 8, 1))
  labels = np.arange(12) % 4
  whole = garbage_sources.hard_negatives(model, variables, starts, labels, steps=5,
                                         learning_rate=0.05, batch_size=12)
  pieces = garbage_sources.hard_negatives(model, variables, starts, labels, steps=5,
                                          learning_rate=0.05, batch_size=5)  # 5 + 5 + 2
  np.testing.assert_allclose(pieces, whole, rtol=0, atol=1e-6)


def test_hard_negatives_reject_mismatched_labels(small_classifier):
  model, variables = small_classifier
  with pytest.raises(ValueError, match="3 starts but 2 labels"):
    garbage_sources.hard_negatives(model, variables, np.zeros((3, 8, 8, 1)), [0, 1], steps=1,
                                   learning_rate=0.1)


def _photos(count=40, shape=(16, 16, 3), seed=0):
  """Smooth random colour images: unlike white noise, a ±90° rotation or a tile shuffle
  of one is not another draw of the same distribution."""
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(-1, 1, (count, 4, 4, shape[-1]))
  return np.repeat(np.repeat(coarse, shape[0] // 4, 1), shape[1] // 4, 2).astype(np.float32)


def _tiles(image, grid=garbage_sources.JIGSAW_GRID):
  h, w = image.shape[0] // grid, image.shape[1] // grid
  return sorted(image[i * h:(i + 1) * h, j * w:(j + 1) * w].tobytes()
                for i in range(grid) for j in range(grid))


def test_shifted_images_apply_each_transform_in_turn_to_training_images():
  source = _photos()
  shifted = garbage_sources.shifted_images([0, 2], source, 30)
  assert shifted.shape == (30, 16, 16, 3) and shifted.dtype == np.float32
  np.testing.assert_array_equal(shifted, garbage_sources.shifted_images([0, 2], source, 30))  # seeded
  assert not np.array_equal(shifted, garbage_sources.shifted_images([0, 3], source, 30))
  for i, image in enumerate(shifted):
    kind = garbage_sources.SHIFT_TRANSFORMS[i % 3]
    if kind == "rotate90":
      made = [np.rot90(s, k, (0, 1)) for s in source for k in (1, 3)]
    elif kind == "jigsaw":  # the same tiles in another order
      made = [image for s in source if _tiles(s) == _tiles(image)]
    else:  # a non-identity permutation of the channels
      made = [s[..., p] for s in source
              for p in ([0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0])]
    assert any(np.array_equal(image, m) for m in made), (i, kind)
    assert not any(np.array_equal(image, s) for s in source), (i, kind)


def test_shifted_images_skip_images_the_transform_leaves_unchanged():
  # Grey images are their own channel permutation; only the one coloured image is used.
  grey = np.repeat(_photos(shape=(16, 16, 1)), 3, -1)
  coloured = _photos(count=1, seed=5)
  shifted = garbage_sources.shifted_images(1, np.concatenate([grey, coloured]), 6, ("permute_channels",))
  for image in shifted:
    assert np.mean(np.abs(image - coloured[0])) >= garbage_sources.MIN_SHIFT_CHANGE
    assert sorted(image.reshape(-1, 3).T.tolist()) == sorted(coloured[0].reshape(-1, 3).T.tolist())
  with pytest.raises(ValueError, match="almost unchanged.*Drop it"):
    garbage_sources.shifted_images(1, grey, 4, ("permute_channels",))


@pytest.mark.parametrize("transforms, shape, message", [
    (("rotate90",), (16, 12, 3), "square"),
    (("jigsaw",), (18, 18, 3), "do not divide"),
    (("permute_channels",), (16, 16, 1), "one channel"),
    (("mirror",), (16, 16, 3), "name one or more"),
    ((), (16, 16, 3), "name one or more"),
])
def test_shift_transforms_the_images_cannot_take_are_named(transforms, shape, message):
  with pytest.raises(ValueError, match=message):
    garbage_sources.shifted_images(0, np.zeros((2, *shape), np.float32), 2, transforms)
