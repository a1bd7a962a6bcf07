"""The reconstruction audit (jaxinv.leakage) and training subsets (jaxinv.subsets)."""

import numpy as np
import pytest

from jaxinv import leakage, metrics, subsets


def _images(n, seed, size=14):
  return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 1)).astype(np.float32)


def test_ssim_matrix_equals_pairwise_dm_pix_ssim():
  a, b = _images(3, 0), _images(5, 1)
  b[2] = a[1]  # an identical pair: SSIM 1
  got = leakage.ssim_matrix(a, b, chunk=2)  # a padded last block too
  want = np.array([[float(metrics.ssim(a[i:i + 1], b[j:j + 1])[0]) for j in range(5)] for i in range(3)])
  np.testing.assert_allclose(got, want, atol=1e-5)
  assert got[1, 2] == pytest.approx(1.0, abs=1e-5)


def test_hungarian_matching_on_a_hand_made_case():
  inf = -np.inf
  # Greedy would give row 0 column 0 (0.9) and leave row 1 with 0.1; the optimum is one-to-one
  # 0→1, 1→0 (0.8 + 0.85). Row 2 may only use column 3 (other classes are −inf).
  s = np.array([[0.9, 0.8, 0.2, inf],
                [0.85, 0.1, 0.3, inf],
                [inf, inf, inf, 0.35]])
  rows, cols, scores = leakage.hungarian_match(s)
  assert dict(zip(rows.tolist(), cols.tolist())) == {0: 1, 1: 0, 2: 3}
  np.testing.assert_allclose(scores, [0.85, 0.8, 0.35])  # best first
  assert leakage.count_matches(scores, 0.4) == 2
  assert leakage.count_matches(scores, 0.35) == 3
  assert leakage.count_matches(scores, 0.9) == 0


def test_hungarian_never_uses_a_forbidden_pair():
  s = np.array([[0.5, -np.inf], [0.7, -np.inf]])  # column 1 is another class for both rows
  rows, cols, scores = leakage.hungarian_match(s)
  assert cols.tolist() == [0] and rows.tolist() == [1] and scores.tolist() == [0.7]


def test_same_class_ssim_and_summary_with_a_copied_training_image():
  train = _images(6, 2)
  train_labels = np.array([0, 0, 0, 1, 1, 1])
  images = np.stack([train[4], _images(1, 3)[0]])  # a copy of training image 4 (class 1)
  labels = np.array([1, 0])
  full = leakage.same_class_ssim(images, labels, train, train_labels)
  assert np.all(np.isinf(full[0, :3])) and np.all(np.isinf(full[1, 3:]))  # other classes
  assert full[0, 4] == pytest.approx(1.0, abs=1e-5)
  # With 2 candidates per class only the 2 pixel-nearest entries are filled, with the same values.
  near = leakage.same_class_ssim(images, labels, train, train_labels, candidates=2)
  assert np.isfinite(near).sum(axis=1).tolist() == [2, 2]
  np.testing.assert_allclose(near[np.isfinite(near)], full[np.isfinite(near)], atol=1e-5)
  assert near[0, 4] == pytest.approx(1.0, abs=1e-5)
  audit = leakage.leakage_summary(images, labels, train, train_labels, threshold=0.9)
  assert audit["matched_at_threshold"] == 1 and audit["best_index"][0] == 4
  assert audit["matched_share_of_train"] == pytest.approx(1 / 6)
  assert audit["mean_best_ssim"] == pytest.approx(np.mean(np.max(full, axis=1)), abs=1e-6)


def test_stratified_subsets_are_seeded_and_balanced():
  labels = np.repeat(np.arange(4), 50)
  np.random.default_rng(0).shuffle(labels)
  a = subsets.select(labels, 42, "stratified", seed=3)
  assert len(a) == 42 and len(set(a)) == 42 and np.all(np.diff(a) > 0)
  assert np.bincount(labels[a]).tolist() == [11, 11, 10, 10]
  np.testing.assert_array_equal(a, subsets.select(labels, 42, "stratified", seed=3))
  assert not np.array_equal(a, subsets.select(labels, 42, "stratified", seed=4))
  np.testing.assert_array_equal(subsets.select(labels, 5, "first"), np.arange(5))
  np.testing.assert_array_equal(subsets.select(labels, 0, "stratified"), np.arange(200))
  with pytest.raises(ValueError, match="subset_selection"):
    subsets.select(labels, 5, "random")


def test_membership_gap_is_positive_for_copies_of_members_only():
  members, nonmembers = _images(4, 5), _images(4, 6)
  labels = np.array([0, 0, 1, 1])
  copies = leakage.membership_gap(members[[0, 2]], labels[[0, 2]], members, labels, nonmembers, labels)
  assert copies["gap"] > 0.5 and copies["share_closer_to_members"] == 1.0
  assert copies["mean_best_ssim_members"] == pytest.approx(1.0, abs=1e-5)
  fresh = leakage.membership_gap(_images(2, 7), labels[[0, 2]], members, labels, nonmembers, labels)
  assert abs(fresh["gap"]) < 0.1  # noise is no closer to either set
