"""Numbers that tell whether an inversion worked (method notes §8).

Pure functions of arrays. Three groups:

* accuracy: the share of generated images a classifier assigns to their label,
  per class — for the inverted classifier (target) and for an independently
  trained one of another architecture (verifier), which adversarial patterns
  do not fool;
* diversity of features: within-class pairwise cosine, the Gram matrix's
  deviation from identity, and k-NN precision/recall (coverage) against real data;
* closeness to data: nearest training image in pixel space, and SSIM to it.
"""

import functools

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from jaxinv import losses

_CHUNK = 1024  # rows per distance block: bounds memory at CHUNK × N floats


def confusion(predictions, labels, num_classes: int) -> list[list[int]]:
  """Counts `[requested label][predicted class]`: where a classifier puts the images of each
  label it does not recognise."""
  counts = np.zeros((num_classes, num_classes), dtype=np.int64)
  np.add.at(counts, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
  return counts.tolist()


def accuracy_per_class(predictions, labels, num_classes: int) -> list[float]:
  """Share of examples of each class predicted as that class (NaN for an absent class)."""
  predictions, labels = np.asarray(predictions), np.asarray(labels)
  result = []
  for k in range(num_classes):
    mask = labels == k
    result.append(float(np.mean(predictions[mask] == k)) if mask.any() else float("nan"))
  return result


@jax.jit
def _mean_offdiag_cosine(features):
  return losses.mean_pairwise_cosine(features)


@jax.jit
def _gram_deviation(features):
  return losses.gram_orthogonality(features)


def _per_class(fn, features, labels, num_classes: int, max_per_class: int) -> list[float]:
  """`fn` on the first `max_per_class` features of each class with at least 2 (NaN otherwise)."""
  features, labels = np.asarray(features, np.float32), np.asarray(labels)
  values = []
  for k in range(num_classes):
    f = features[labels == k][:max_per_class]
    values.append(float(fn(jnp.asarray(f))) if len(f) >= 2 else float("nan"))
  return values


def within_class_cosine_per_class(features, labels, num_classes: int,
                                  max_per_class: int = 500) -> list[float]:
  """Per class: the mean pairwise cosine between features of that class (lower = more diverse)."""
  return _per_class(_mean_offdiag_cosine, features, labels, num_classes, max_per_class)


def mean_within_class_cosine(features, labels, num_classes: int, max_per_class: int = 500) -> float:
  """Mean over classes of the mean pairwise cosine between features of the same class.

  Lower means more diverse. At most `max_per_class` examples per class are used
  (the first ones), which bounds the N² pair count."""
  return float(np.nanmean(within_class_cosine_per_class(features, labels, num_classes, max_per_class)))


def mean_gram_deviation(features, labels, num_classes: int, max_per_class: int = 500) -> float:
  """Mean over classes of `mean_{i,j} (G_ij − δ_ij)²`, G = F̂F̂ᵀ of one class's
  row-normalised features: 0 for mutually orthogonal features, near 1 when all
  point the same way. The orthogonality loss is this quantity on a training batch."""
  return float(np.nanmean(_per_class(_gram_deviation, features, labels, num_classes, max_per_class)))


def _squared_distances(a, b):
  # ‖a‖² − 2ab + ‖b‖², clipped at 0 against cancellation.
  d = jnp.sum(a * a, -1)[:, None] - 2.0 * a @ b.T + jnp.sum(b * b, -1)[None, :]
  return jnp.maximum(d, 0.0)


@functools.partial(jax.jit, static_argnames=("k", "exclude_self"))
def _nearest_block(queries, references, start, k: int, exclude_self: bool):
  d = _squared_distances(queries, references)
  if exclude_self:  # the query set is the reference set: a point is not its own neighbour
    rows = jnp.arange(d.shape[0])
    d = d.at[rows, rows + start].set(jnp.inf)
  _, idx = jax.lax.top_k(-d, k)
  # The expanded form loses precision near 0 (cancellation): the chosen distances
  # are recomputed directly.
  dist = jnp.linalg.norm(references[idx] - queries[:, None, :], axis=-1)
  return idx, dist


def _flat(x) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x.reshape(len(x), -1)


def _smallest_distances(queries, references, k: int, exclude_self: bool = False):
  """`(indices [M, k], distances [M, k])` of the k nearest references (Euclidean), by row blocks."""
  queries, references = _flat(queries), jnp.asarray(_flat(references))
  if k + exclude_self > references.shape[0]:
    raise ValueError(f"Asked for the {k} nearest neighbours among {references.shape[0]} points"
                     f"{' (self excluded)' if exclude_self else ''}; use fewer neighbours or more points.")
  blocks = [_nearest_block(jnp.asarray(queries[i:i + _CHUNK]), references, i, k, exclude_self)
            for i in range(0, len(queries), _CHUNK)]
  return (np.concatenate([np.asarray(i) for i, _ in blocks]),
          np.concatenate([np.asarray(d) for _, d in blocks]))


def nearest_neighbours(queries, references, k: int = 1):
  """`(indices [M, k], distances [M, k])`: each query's k nearest references in
  Euclidean distance over all entries (pixels for images), nearest first."""
  return _smallest_distances(queries, references, k)


@jax.jit
def _covered_block(points, centres, radii):
  return jnp.any(_squared_distances(points, centres) <= (radii * radii)[None, :], axis=1)


def _covered(points, centres, radii) -> np.ndarray:
  """Whether each point lies in at least one ball `‖x − centre_i‖ ≤ radius_i`."""
  points, centres = _flat(points), jnp.asarray(_flat(centres))
  radii = jnp.asarray(radii, jnp.float32)
  return np.concatenate([np.asarray(_covered_block(jnp.asarray(points[i:i + _CHUNK]), centres, radii))
                         for i in range(0, len(points), _CHUNK)])


def knn_precision_recall(real, generated, k: int = 3) -> dict:
  """Improved precision and recall (Kynkäänniemi et al. 2019) in a feature space.

  Each point's manifold ball reaches its k-th nearest neighbour within its own set.
  precision: share of generated points inside some real ball (are the images
  realistic?); recall: share of real points inside some generated ball (is the
  real data covered — the diversity question)."""
  real, generated = _flat(real), _flat(generated)
  _, real_d = _smallest_distances(real, real, k, exclude_self=True)
  _, gen_d = _smallest_distances(generated, generated, k, exclude_self=True)
  return {"precision": float(np.mean(_covered(generated, real, real_d[:, -1]))),
          "recall": float(np.mean(_covered(real, generated, gen_d[:, -1])))}


@functools.partial(jax.jit, static_argnames="filter_size")
def _ssim(a, b, filter_size: int):
  return dm_pix.ssim((a + 1.0) / 2.0, (b + 1.0) / 2.0, max_val=1.0, filter_size=filter_size)


def ssim(a, b) -> np.ndarray:
  """SSIM of image pairs `a[i]`, `b[i]` (NHWC in [-1, 1]) with dm-pix's Gaussian-window SSIM.

  The window is dm-pix's default 11×11 (σ = 1.5), shrunk to the image size for smaller images."""
  a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
  return np.asarray(_ssim(a, b, min(11, a.shape[1], a.shape[2])))


def closeness_to_data(images, train_images, candidates: int = 8) -> dict:
  """Per image: Euclidean distance to the nearest training image, and the highest
  SSIM among its `candidates` nearest training images in pixel distance.

  Searching SSIM over the whole training set per image is N×60 000 windowed
  comparisons; the pixel-nearest candidates are where a copied training image
  would be, so the maximum over them is what a memorisation check needs.
  Returns arrays `nn_distance [N]`, `nn_index [N]`, `ssim [N]`, `ssim_index [N]`."""
  images = np.asarray(images, np.float32)
  train_images = np.asarray(train_images, np.float32)
  idx, dist = nearest_neighbours(images, train_images, k=min(candidates, len(train_images)))
  k = idx.shape[1]
  scores = ssim(np.repeat(images, k, axis=0), train_images[idx.reshape(-1)]).reshape(len(images), k)
  best = np.argmax(scores, axis=1)
  rows = np.arange(len(images))
  return {"nn_distance": dist[:, 0], "nn_index": idx[:, 0],
          "ssim": scores[rows, best], "ssim_index": idx[rows, best]}


# --- Out-of-distribution detection (method notes §6) ---
# Scores follow jaxinv.ood's convention: higher = more out-of-distribution.
# Positives are the IN-distribution examples (the common convention): TPR is the share
# of in-distribution inputs accepted, FPR the share of OOD inputs accepted with them.


def _ood_arrays(in_scores, out_scores):
  s_in = np.asarray(in_scores, np.float64).ravel()
  s_out = np.asarray(out_scores, np.float64).ravel()
  if not len(s_in) or not len(s_out):
    raise ValueError(f"OOD metrics need scores of both sets; got {len(s_in)} in-distribution "
                     f"and {len(s_out)} out-of-distribution.")
  if not (np.isfinite(s_in).all() and np.isfinite(s_out).all()):
    raise ValueError("OOD scores contain NaN or infinity; check the classifier's logits.")
  return s_in, s_out


def auroc(in_scores, out_scores) -> float:
  """P(OOD score > ID score) + ½·P(equal): the same number whether ID (with −score) or OOD
  (with score) is called positive. 1 = perfect separation, 0.5 = chance, 0 = reversed."""
  from sklearn.metrics import roc_auc_score
  s_in, s_out = _ood_arrays(in_scores, out_scores)
  return float(roc_auc_score(np.r_[np.zeros(len(s_in)), np.ones(len(s_out))], np.r_[s_in, s_out]))


def aupr_in(in_scores, out_scores) -> float:
  """Average precision with the in-distribution set as positives, ranked by −score."""
  from sklearn.metrics import average_precision_score
  s_in, s_out = _ood_arrays(in_scores, out_scores)
  return float(average_precision_score(np.r_[np.ones(len(s_in)), np.zeros(len(s_out))],
                                       -np.r_[s_in, s_out]))


def aupr_out(in_scores, out_scores) -> float:
  """Average precision with the OOD set as positives, ranked by score."""
  from sklearn.metrics import average_precision_score
  s_in, s_out = _ood_arrays(in_scores, out_scores)
  return float(average_precision_score(np.r_[np.zeros(len(s_in)), np.ones(len(s_out))],
                                       np.r_[s_in, s_out]))


def fpr_at_tpr(in_scores, out_scores, tpr: float = 0.95) -> float:
  """Share of OOD inputs accepted as in-distribution when ≥ `tpr` of in-distribution inputs are.

  An input is accepted when its score is ≤ t; t is the smallest in-distribution score
  with at least `tpr` of the in-distribution scores ≤ t. OOD scores equal to t count as
  accepted (ties are resolved against the detector)."""
  if not 0.0 < tpr <= 1.0:
    raise ValueError(f"tpr must lie in (0, 1]; got {tpr}.")
  s_in, s_out = _ood_arrays(in_scores, out_scores)
  threshold = np.sort(s_in)[int(np.ceil(tpr * len(s_in) - 1e-9)) - 1]
  return float(np.mean(s_out <= threshold))


def detection_rate(predictions, garbage_class: int) -> float:
  """Share of inputs the K+1-class classifier sends to its garbage class."""
  predictions = np.asarray(predictions)
  if not predictions.size:
    raise ValueError("detection_rate needs at least one prediction.")
  return float(np.mean(predictions == garbage_class))


def ood_metrics(in_scores, out_scores) -> dict:
  """AUROC, AUPR-in, AUPR-out and FPR@95%TPR of one score on one OOD set."""
  return {"auroc": auroc(in_scores, out_scores), "aupr_in": aupr_in(in_scores, out_scores),
          "aupr_out": aupr_out(in_scores, out_scores),
          "fpr95": fpr_at_tpr(in_scores, out_scores, 0.95)}


def accuracy(predictions, labels) -> float:
  """Share of correct predictions (for the K+1-class classifier an in-distribution image
  sent to garbage counts as wrong)."""
  predictions, labels = np.asarray(predictions), np.asarray(labels)
  if predictions.shape != labels.shape or not labels.size:
    raise ValueError(f"accuracy needs equally many predictions and labels (got "
                     f"{predictions.shape} and {labels.shape}).")
  return float(np.mean(predictions == labels))
