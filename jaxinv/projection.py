"""2-D views of classifier features for the paper's PCA, decision-boundary and
t-SNE figures (method notes §5). Pure functions of arrays (scikit-learn)."""

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE


def pca_2d(features, fit_on=None):
  """`(points [N, 2], pca)`: features projected on the first two principal axes
  of `fit_on` (default: the features themselves). Fitting on one set and
  projecting another keeps generated and real points in the same coordinates."""
  features = np.asarray(features, np.float64).reshape(len(features), -1)
  basis = features if fit_on is None else np.asarray(fit_on, np.float64).reshape(len(fit_on), -1)
  if len(basis) < 2:
    raise ValueError(f"PCA needs at least 2 points; got {len(basis)}.")
  pca = PCA(n_components=2, svd_solver="full").fit(basis)
  return pca.transform(features), pca


def tsne_2d(features, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
  """t-SNE embedding `[N, 2]` (PCA initialisation, fixed seed: reproducible).

  The perplexity is capped below N/3, which small sets need."""
  features = np.asarray(features, np.float64).reshape(len(features), -1)
  if len(features) < 4:
    raise ValueError(f"t-SNE needs at least 4 points; got {len(features)}.")
  perplexity = min(perplexity, (len(features) - 1) / 3.0)
  return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
              learning_rate="auto").fit_transform(features)


def class_means(points, labels, num_classes: int) -> np.ndarray:
  """`[K, D]` mean point of each class (NaN rows for absent classes)."""
  points, labels = np.asarray(points, np.float64), np.asarray(labels)
  return np.stack([points[labels == k].mean(0) if np.any(labels == k)
                   else np.full(points.shape[1], np.nan) for k in range(num_classes)])


def nearest_mean(points, means) -> np.ndarray:
  """`[N]` class of the nearest class mean of each point (NaN means never win)."""
  d = np.sum((np.asarray(points)[:, None, :] - np.asarray(means)[None]) ** 2, -1)
  return np.argmin(np.where(np.isnan(d), np.inf, d), -1)


def nearest_mean_regions(means, xs, ys) -> np.ndarray:
  """`[len(ys), len(xs)]` class of the nearest class mean at each grid point."""
  grid = np.stack(np.meshgrid(xs, ys), -1)  # [Y, X, 2]
  return nearest_mean(grid.reshape(-1, 2), means).reshape(len(ys), len(xs))
