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
