"""Rejection sampling: keep the generated images that other classifiers take as their label.

    accept = acceptance.confident([robust], threshold=0.7)
    drawn = acceptance.sample_accepted(generator, variables, labels, key, accept)
    drawn.images, drawn.acceptance_per_class

A generator trained against a classifier still makes a few images that classifiers of
another training (e.g. the robustly trained members of `robust_prior`, whose judgements
follow what an image looks like) do not take as their label. Drawing candidates and
keeping those every such classifier gives the label with probability ≥ a threshold lifts
the weakest classes at the cost of the draws rejected; the kept images are the
generator's own, in the order drawn, so a low threshold changes little else.
"""

import functools
from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np

from jaxinv import sampling
from jaxinv.classifier import Classifier

RETRY_STREAM = 0x72657472  # folded into the key for the draws after the first
MIN_RATE = 1 / 16  # a class accepting fewer draws than this is drawn 16× its shortfall


class Accepted(NamedTuple):
  """Images `[N, H, W, C]` for the requested labels (in their order), the fraction of
  draws accepted per class (NaN for a class not requested) and the draws made."""
  images: np.ndarray
  acceptance_per_class: list
  drawn: int


def label_probability(classifiers: Sequence[Classifier], images, labels, *,
                      batch_size: int = 500) -> np.ndarray:
  """`[N]`: the smallest probability any of `classifiers` gives image i's label."""
  if not classifiers:
    raise ValueError("label_probability needs at least one classifier to judge the images.")
  labels = np.asarray(labels)
  smallest = np.ones(len(labels), np.float32)
  for classifier in classifiers:
    probs = _probabilities(classifier.apply_fn)
    for start in range(0, len(labels), batch_size):
      chunk = np.asarray(images[start:start + batch_size])
      count = len(chunk)
      # One shape for every chunk: one compile, whatever the number of draws.
      padded = np.pad(chunk, [(0, batch_size - count)] + [(0, 0)] * (chunk.ndim - 1))
      own = np.asarray(probs(classifier.params, padded))[np.arange(count),
                                                         labels[start:start + count]]
      smallest[start:start + count] = np.minimum(smallest[start:start + count], own)
  return smallest


def check_threshold(threshold: float) -> float:
  """`threshold` as a float, or an error when it is not a probability in [0, 1)."""
  if not 0.0 <= threshold < 1.0:
    raise ValueError(f"The acceptance threshold is a probability in [0, 1), got {threshold}; "
                     "0 keeps every image, 0.7 rejects those a classifier doubts.")
  return float(threshold)


def confident(classifiers: Sequence[Classifier], threshold: float, *,
              batch_size: int = 500) -> Callable:
  """`accept(images, labels) -> bool [N]`: every classifier gives the label probability
  ≥ `threshold` (in [0, 1); 0 accepts everything)."""
  check_threshold(threshold)
  classifiers = tuple(classifiers)
  if not classifiers:
    raise ValueError("confident needs at least one classifier to judge the images.")

  def accept(images, labels):
    return label_probability(classifiers, images, labels, batch_size=batch_size) >= threshold
  return accept


def sample_accepted(generator, variables, labels, key, accept: Callable, *, max_rounds: int = 8,
                    batch_size: int = 500, dropout: bool = True) -> Accepted:
  """`sampling.sample` that keeps only the images `accept(images, labels)` passes.

  The first round draws `labels` from `key` exactly as `sampling.sample` does (so an
  `accept` that passes everything returns its images); each later round draws a class's
  shortfall divided by its acceptance so far, from `fold_in(key, round)` of a separate
  stream. Raises after `max_rounds` with a class still short, naming it."""
  if max_rounds < 1:
    raise ValueError(f"max_rounds must be at least 1 (the first draw), got {max_rounds}.")
  labels = sampling.check_labels(labels, generator.num_classes)
  num_classes = generator.num_classes
  wanted = np.bincount(labels, minlength=num_classes)
  kept = [[] for _ in range(num_classes)]
  drawn_per_class = np.zeros(num_classes, np.int64)
  accepted_per_class = np.zeros(num_classes, np.int64)
  draw_labels, draw_key = labels, key
  for round_index in range(max_rounds):
    images = sampling.sample(generator, variables, draw_labels, draw_key, batch_size=batch_size,
                             dropout=dropout)
    passed = np.asarray(accept(images, draw_labels), bool)
    if passed.shape != draw_labels.shape:
      raise ValueError(f"accept(images, labels) must return one bool per image, shape "
                       f"{draw_labels.shape}; got {passed.shape}.")
    for k in np.unique(draw_labels):
      of_k = draw_labels == k
      drawn_per_class[k] += of_k.sum()
      accepted_per_class[k] += (of_k & passed).sum()
      kept[k].extend(images[of_k & passed])
    short = np.maximum(wanted - np.array([len(x) for x in kept]), 0)
    if not short.any():
      break
    rate = np.maximum(accepted_per_class / np.maximum(drawn_per_class, 1), MIN_RATE)
    draw_labels = np.concatenate([np.full(int(np.ceil(short[k] / rate[k])), k, np.int32)
                                  for k in range(num_classes) if short[k]])
    draw_key = jax.random.fold_in(jax.random.fold_in(key, RETRY_STREAM), round_index + 1)
  else:
    worst = int(np.argmax(short))
    raise ValueError(
        f"After {max_rounds} rounds of draws, class {worst} has {len(kept[worst])} of the "
        f"{wanted[worst]} images asked for: {accepted_per_class[worst]} of "
        f"{drawn_per_class[worst]} draws accepted. Lower the acceptance threshold, raise "
        "max_rounds, or check that the judging classifiers take the generator's images.")
  rank = np.zeros(num_classes, np.int64)
  out = np.zeros((len(labels), *generator.image_shape), np.float32)
  for i, k in enumerate(labels):
    out[i] = kept[k][rank[k]]
    rank[k] += 1
  acceptance = [float(accepted_per_class[k] / drawn_per_class[k]) if drawn_per_class[k]
                else float("nan") for k in range(num_classes)]
  return Accepted(out, acceptance, int(drawn_per_class.sum()))


@functools.lru_cache(maxsize=16)
def _probabilities(apply_fn):
  """`(params, images) -> softmax of the logits`, compiled once per classifier function."""
  return jax.jit(lambda params, x: jax.nn.softmax(apply_fn(params, x)[0], axis=-1))
