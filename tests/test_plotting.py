"""Every figure function renders from small arrays; the projections behind them."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from jaxinv import plotting, projection

NAMES = ("a", "b", "c")


@pytest.fixture
def feats():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 6)
  features = rng.normal(size=(18, 5)) + 3.0 * np.eye(5)[labels]  # separable classes
  return features, labels


def _rendered(fig) -> np.ndarray:
  fig.canvas.draw()
  pixels = np.asarray(fig.canvas.buffer_rgba())
  plt.close(fig)
  return pixels


def test_image_figures_render():
  rng = np.random.default_rng(1)
  images = rng.uniform(-1, 1, size=(3, 4, 8, 8, 1))
  fig = plotting.fixed_latent_grid(images, NAMES)
  assert len(fig.axes) == 12 and fig.axes[0].get_title() == "z0"
  assert _rendered(fig).std() > 0
  fig = plotting.interpolation_strip(images[:2], np.linspace(0, 1, 4), ["a→b", "b→c"])
  assert len(fig.axes) == 8 and fig.axes[3].get_title() == "1.00"
  assert _rendered(fig).std() > 0
  fig = plotting.nearest_pairs_figure(images[0], images[1], [0.1, 0.2, 0.3, 0.4], list("wxyz"))
  assert len(fig.axes) == 8 and "0.40" in fig.axes[7].get_xlabel()
  _rendered(fig)
  with pytest.raises(ValueError, match="K=3"):
    plotting.fixed_latent_grid(images[:2], NAMES)


def test_feature_figures_render(feats):
  features, labels = feats
  for fig in (plotting.pca_figure(features, labels, NAMES, features + 0.1, labels),
              plotting.tsne_figure(features, labels, NAMES, features + 0.1, labels),
              plotting.decision_boundary_figure(features, labels, NAMES, features, labels, resolution=20)):
    assert len(fig.axes) == 2
    # one scatter collection per class in each panel
    assert len(fig.axes[0].collections) == 3
    _rendered(fig)
  fig = plotting.tsne_figure(features, labels, NAMES)
  assert len(fig.axes) == 1
  _rendered(fig)


def test_decision_boundary_reports_share_in_own_region(feats):
  features, labels = feats
  fig = plotting.decision_boundary_figure(features, labels, NAMES, resolution=10)
  assert "100% in own region" in fig.axes[0].get_title()  # well separated classes
  plt.close(fig)


def test_loss_curves_one_panel_per_quantity():
  records = [{"step": s, "time_s": 0.1 * s, "loss": 1.0 / s, "target_accuracy": s / 10} for s in (1, 2, 3)]
  fig = plotting.loss_curves(records)
  titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
  assert titles == ["loss", "target_accuracy"]
  np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [1.0, 0.5, 1 / 3])
  _rendered(fig)
  with pytest.raises(ValueError, match="at least one"):
    plotting.loss_curves([])


def test_pca_matches_numpy_svd(feats):
  features, _ = feats
  points, _ = projection.pca_2d(features)
  centred = features - features.mean(0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  want = centred @ vt[:2].T
  np.testing.assert_allclose(np.abs(points), np.abs(want), atol=1e-8)  # axes up to sign


def test_nearest_mean_regions_by_hand():
  means = np.array([[0.0, 0.0], [10.0, 0.0], [np.nan, np.nan]])
  np.testing.assert_array_equal(projection.nearest_mean([[1.0, 5.0], [6.0, -1.0]], means), [0, 1])
  regions = projection.nearest_mean_regions(means, np.array([-1.0, 4.0, 6.0, 11.0]), np.array([0.0, 1.0]))
  np.testing.assert_array_equal(regions, [[0, 0, 1, 1], [0, 0, 1, 1]])
  np.testing.assert_allclose(projection.class_means([[0, 0], [2, 2], [4, 0]], [0, 0, 1], 2),
                             [[1, 1], [4, 0]])
