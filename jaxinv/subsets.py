"""Which training images a classifier sees when `max_train_examples` limits them.

The reconstruction audit (`jaxinv reconstruct`) compares reconstructions with
exactly these images, so the choice is a pure function of (labels, count,
selection, seed) and the classifier run also saves the indices it used.
"""

import numpy as np

SELECTIONS = ("first", "stratified")


def select(labels, count: int, selection: str = "first", seed: int = 0) -> np.ndarray:
  """Sorted indices of `count` examples (all of them when `count` is 0 or ≥ N).

  "first": the split's first `count` examples. "stratified": ⌊count/K⌋ per class (the
  remainder to the lowest classes), drawn without replacement with `seed`."""
  labels = np.asarray(labels)
  n = len(labels)
  if not count or count >= n:
    return np.arange(n)
  if selection == "first":
    return np.arange(count)
  if selection != "stratified":
    raise ValueError(f"Unknown subset selection {selection!r}; choose one of {SELECTIONS} "
                     "(config field subset_selection).")
  classes = np.unique(labels)
  base, extra = divmod(count, len(classes))
  rng = np.random.default_rng([seed, count])
  chosen = []
  for i, k in enumerate(classes):
    members = np.flatnonzero(labels == k)
    want = base + (i < extra)
    if want > len(members):
      raise ValueError(f"A stratified subset of {count} needs {want} examples of class {k}, "
                       f"which has only {len(members)}; lower max_train_examples.")
    chosen.append(rng.choice(members, size=want, replace=False))
  return np.sort(np.concatenate(chosen))
