import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import conditioning


def test_random_soft_labels_are_argmax_and_rows_sum_to_one():
  p, y = conditioning.random_soft(jax.random.key(0), 4096, 10)
  np.testing.assert_array_equal(np.argmax(p, -1), y)
  np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
  # Uniform labels in expectation: every class appears, none dominates.
  counts = np.bincount(np.asarray(y), minlength=10)
  assert counts.min() > 300 and counts.max() < 520


@pytest.mark.parametrize("num_classes", [2, 10, 100])
def test_soft_for_labels_argmax_is_the_requested_label(num_classes):
  labels = jnp.asarray(np.random.default_rng(0).integers(0, num_classes, 20000), jnp.int32)
  for seed in range(3):
    p = conditioning.soft_for_labels(jax.random.key(seed), labels, num_classes)
    np.testing.assert_array_equal(np.argmax(p, -1), labels)
    assert np.all(p > 0)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-4)


def test_soft_for_labels_handles_exact_ties():
  # Identical logits would make every entry equal; the requested label must still win.
  p = conditioning._soft_for_label(jax.random.key(0), 3, 5, 1.0)
  assert int(jnp.argmax(p)) == 3
  flat = jax.nn.softmax(jnp.zeros(5))
  below = jnp.nextafter(flat[3], 0.0)
  tied = jnp.where(jnp.arange(5) == 3, flat, jnp.minimum(flat, below))
  assert int(jnp.argmax(tied)) == 3


def test_one_hot():
  np.testing.assert_array_equal(conditioning.one_hot(jnp.array([2, 0]), 3),
                                [[0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize("pattern,expected_ones", [("row", 4), ("cross", 7), ("diag", 4)])
def test_hot_matrix_patterns(pattern, expected_ones):
  mats = np.asarray(conditioning.hot_matrices(jnp.arange(4), 4, pattern))
  assert mats.shape == (4, 4, 4, 1)
  for y in range(4):
    m = mats[y, ..., 0]
    assert m.sum() == expected_ones
    if pattern == "row":
      assert m[y].all()
    if pattern == "cross":
      assert m[y].all() and m[:, y].all()
    if pattern == "diag":
      assert all(m[i, (i + y) % 4] == 1 for i in range(4))
  # Every class gets a distinct matrix.
  assert len({mats[y].tobytes() for y in range(4)}) == 4


def test_unknown_pattern_and_mode_errors():
  with pytest.raises(ValueError, match="hot-matrix pattern"):
    conditioning.hot_matrices(jnp.arange(2), 2, "star")
  with pytest.raises(ValueError, match="conditioning mode"):
    conditioning.sample_batch(jax.random.key(0), 4, 10, 8, "telepathy")


@pytest.mark.parametrize("mode", conditioning.MODES)
def test_sample_batch_is_consistent(mode):
  batch = conditioning.sample_batch(jax.random.key(1), 256, 10, 16, mode)
  assert batch["z"].shape == (256, 16)
  np.testing.assert_array_equal(np.argmax(batch["p"], -1), batch["y"])
  if mode == "one_hot":
    np.testing.assert_array_equal(batch["p"].max(-1), 1.0)


@pytest.mark.parametrize("mode", conditioning.MODES)
def test_batch_for_labels_keeps_requested_labels(mode):
  labels = jnp.array([0, 9, 3, 3])
  batch = conditioning.batch_for_labels(jax.random.key(2), labels, 10, 8, mode)
  np.testing.assert_array_equal(batch["y"], labels)
  np.testing.assert_array_equal(np.argmax(batch["p"], -1), labels)


def test_temperature_divides_the_logits_before_the_softmax():
  key = jax.random.key(4)
  v = np.asarray(jax.random.normal(key, (64, 10)), np.float64)
  for temperature in (1.0, 0.3, 0.05):
    p, y = conditioning.random_soft(key, 64, 10, temperature)
    e = np.exp((v - v.max(-1, keepdims=True)) / temperature)
    np.testing.assert_allclose(p, e / e.sum(-1, keepdims=True), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(y, v.argmax(-1))  # the labels do not depend on it
  # Lower temperatures: sharper vectors, the same labels.
  top = [float(conditioning.random_soft(key, 4096, 10, t)[0].max(-1).mean()) for t in (1.0, 0.3, 0.1)]
  assert top[0] < 0.4 < top[1] < top[2]


@pytest.mark.parametrize("mode", ["vector", "label"])
def test_requested_labels_win_at_any_temperature(mode):
  labels = jnp.asarray(np.random.default_rng(1).integers(0, 10, 4096), jnp.int32)
  for temperature in (2.0, 0.1, 0.01):
    batch = conditioning.batch_for_labels(jax.random.key(3), labels, 10, 8, mode, temperature)
    np.testing.assert_array_equal(np.argmax(batch["p"], -1), labels)
    assert np.all(np.isfinite(batch["p"]))
    np.testing.assert_allclose(batch["p"].sum(-1), 1.0, rtol=1e-4)
