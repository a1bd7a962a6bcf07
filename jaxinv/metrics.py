"""Numbers that tell whether an inversion worked (method notes §8)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv import losses


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


def mean_within_class_cosine(features, labels, num_classes: int, max_per_class: int = 500) -> float:
  """Mean over classes of the mean pairwise cosine between features of the same class.

  Lower means more diverse. At most `max_per_class` examples per class are used
  (the first ones), which bounds the N² pair count."""
  features, labels = np.asarray(features), np.asarray(labels)
  per_class = []
  for k in range(num_classes):
    f = features[labels == k][:max_per_class]
    if len(f) >= 2:
      per_class.append(float(_mean_offdiag_cosine(jnp.asarray(f))))
  return float(np.mean(per_class))


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
