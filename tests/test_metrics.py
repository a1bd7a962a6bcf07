"""Evaluation metrics against hand-computed and brute-force numpy values."""

import numpy as np
import pytest

from jaxinv import metrics


def test_confusion_counts_each_requested_label_by_predicted_class():
  rng = np.random.default_rng(0)
  labels, predictions = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
  counts = np.asarray(metrics.confusion(predictions, labels, 4))
  expected = [[np.sum((labels == i) & (predictions == j)) for j in range(4)] for i in range(4)]
  np.testing.assert_array_equal(counts, expected)
  assert metrics.confusion([], [], 3) == [[0] * 3] * 3  # no images: zeros, not an error


def test_accuracy_per_class_counts_hits_per_label():
  acc = metrics.accuracy_per_class([0, 1, 1, 2, 0], [0, 1, 2, 2, 1], 4)
  assert acc[:3] == [1.0, 0.5, 0.5]
  assert np.isnan(acc[3])  # no example of class 3


def test_within_class_cosine_by_hand():
  # Class 0: orthogonal pair (cos 0); class 1: parallel pair (cos 1).
  features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [2.0, 0.0]])
  labels = np.array([0, 0, 1, 1])
  per_class = metrics.within_class_cosine_per_class(features, labels, 2)
  np.testing.assert_allclose(per_class, [0.0, 1.0], atol=1e-6)
  assert metrics.mean_within_class_cosine(features, labels, 2) == pytest.approx(0.5, abs=1e-6)


def test_gram_deviation_by_hand():
  # Orthogonal pair: Gram = I, deviation 0. Parallel pair: Gram = ones, (G − I)² has two 1s of 4.
  assert metrics.mean_gram_deviation(np.eye(2), [0, 0], 1) == pytest.approx(0.0, abs=1e-7)
  assert metrics.mean_gram_deviation(np.ones((2, 3)), [0, 0], 1) == pytest.approx(0.5, abs=1e-6)
  features = np.concatenate([np.eye(2), np.ones((2, 2))])
  assert metrics.mean_gram_deviation(features, [0, 0, 1, 1], 2) == pytest.approx(0.25, abs=1e-6)


def test_nearest_neighbours_match_brute_force_across_chunks():
  rng = np.random.default_rng(0)
  queries = rng.normal(size=(1100, 5)).astype(np.float32)  # more rows than one distance block
  refs = rng.normal(size=(300, 5)).astype(np.float32)
  idx, dist = metrics.nearest_neighbours(queries, refs, k=3)
  d = np.linalg.norm(queries[:, None] - refs[None], axis=-1)
  want = np.argsort(d, axis=1)[:, :3]
  np.testing.assert_array_equal(idx, want)
  np.testing.assert_allclose(dist, np.take_along_axis(d, want, 1), rtol=1e-4, atol=1e-4)


def test_knn_precision_recall_by_hand():
  # Real points 0,1,2,3 on a line: with k = 1 every real ball has radius 1.
  real = np.array([[0.0], [1.0], [2.0], [3.0]])
  # 0.5 lies in a real ball, 10 does not → precision 1/2. With k = 1 both generated
  # balls have radius 9.5, which covers every real point → recall 1.
  generated = np.array([[0.5], [10.0]])
  assert metrics.knn_precision_recall(real, generated, k=1) == {"precision": 0.5, "recall": 1.0}
  # Two generated points close together inside real point 3's ball: their radius 0.1
  # reaches no real point.
  generated = np.array([[3.5], [3.6]])
  assert metrics.knn_precision_recall(real, generated, k=1) == {"precision": 1.0, "recall": 0.0}


def test_knn_precision_recall_matches_numpy():
  rng = np.random.default_rng(1)
  real, gen, k = rng.normal(size=(60, 4)), rng.normal(0.5, 1.0, size=(50, 4)), 3

  def radii(x):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

  d = np.linalg.norm(gen[:, None] - real[None], axis=-1)  # [gen, real]
  precision = np.mean(np.any(d <= radii(real)[None, :], axis=1))
  recall = np.mean(np.any(d.T <= radii(gen)[None, :], axis=1))
  got = metrics.knn_precision_recall(real, gen, k=k)
  assert got["precision"] == pytest.approx(precision)
  assert got["recall"] == pytest.approx(recall)
  with pytest.raises(ValueError, match="nearest neighbours"):
    metrics.knn_precision_recall(real[:3], gen, k=3)


def test_ssim_identity_and_constant_images():
  rng = np.random.default_rng(2)
  images = rng.uniform(-1, 1, size=(3, 16, 16, 1)).astype(np.float32)
  np.testing.assert_allclose(metrics.ssim(images, images), 1.0, atol=1e-5)
  # Constant images a, b (in [0, 1]): SSIM = (2ab + C1) / (a² + b² + C1), C1 = 0.01², the
  # contrast-structure factor is C2/C2 = 1.
  a, b = 0.75, 0.25
  x = np.full((1, 16, 16, 1), 2 * a - 1, np.float32)
  y = np.full((1, 16, 16, 1), 2 * b - 1, np.float32)
  c1 = 0.01 ** 2
  assert metrics.ssim(x, y)[0] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-4)


def test_closeness_finds_a_copied_training_image():
  rng = np.random.default_rng(3)
  train = rng.uniform(-1, 1, size=(40, 12, 12, 1)).astype(np.float32)
  queries = np.stack([train[7], np.clip(train[21] + 0.05, -1, 1)])
  close = metrics.closeness_to_data(queries, train, candidates=4)
  np.testing.assert_array_equal(close["nn_index"], [7, 21])
  np.testing.assert_array_equal(close["ssim_index"], [7, 21])
  assert close["nn_distance"][0] == pytest.approx(0.0, abs=1e-3)
  assert close["ssim"][0] == pytest.approx(1.0, abs=1e-5)
  assert 0.5 < close["ssim"][1] < 1.0
