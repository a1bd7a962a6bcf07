"""Pure functions from arrays to matplotlib Figures (no file system here)."""

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to files, never shown
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def to_display(images: np.ndarray) -> np.ndarray:
  """[-1, 1] NHWC → [0, 1], single-channel images squeezed to HW."""
  images = np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)
  return images[..., 0] if images.shape[-1] == 1 else images


def class_grid(images: np.ndarray, labels: np.ndarray, class_names, per_class: int = 10,
               title: str = "") -> plt.Figure:
  """One row per class, up to `per_class` images of that class in each row."""
  images, labels = to_display(images), np.asarray(labels)
  num_classes = len(class_names)
  fig, axes = plt.subplots(num_classes, per_class, figsize=(per_class * 0.8, num_classes * 0.85),
                           squeeze=False)
  for k in range(num_classes):
    chosen = np.flatnonzero(labels == k)[:per_class]
    for j in range(per_class):
      ax = axes[k, j]
      ax.set_xticks([])
      ax.set_yticks([])
      for spine in ax.spines.values():
        spine.set_visible(False)
      if j < len(chosen):
        ax.imshow(images[chosen[j]], cmap="gray", vmin=0.0, vmax=1.0)
    axes[k, 0].set_ylabel(str(class_names[k]), rotation=0, ha="right", va="center", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig


def garbage_rounds(rows, title: str = "") -> plt.Figure:
  """One row of images per `(name, images)` pair, e.g. the garbage class's noise seed and
  then each round's inverted images."""
  width = max(len(images) for _, images in rows)
  fig, axes = plt.subplots(len(rows), width, figsize=(width * 0.6, len(rows) * 0.7 + 0.4),
                           squeeze=False)
  for i, (name, images) in enumerate(rows):
    images = to_display(images)
    for j in range(width):
      ax = axes[i, j]
      ax.set_xticks([])
      ax.set_yticks([])
      for spine in ax.spines.values():
        spine.set_visible(False)
      if j < len(images):
        ax.imshow(images[j], cmap="gray", vmin=0.0, vmax=1.0)
    axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig


def score_histograms(in_scores: dict, out_scores: dict, title: str = "", bins: int = 40,
                     log_x=()) -> plt.Figure:
  """A grid of histograms, one row per score and one column per OOD set: the
  in-distribution scores against that set's. `in_scores` is `{score: values}`,
  `out_scores` `{set: {score: values}}`. Densities, so sets of different sizes compare.
  Scores named in `log_x` (non-negative ones piled up near 0) are shown as log10."""
  names = list(in_scores)
  sets = list(out_scores)
  fig, axes = plt.subplots(len(names), len(sets), figsize=(2.3 * len(sets), 1.7 * len(names) + 0.5),
                           squeeze=False)
  for i, name in enumerate(names):
    for j, set_name in enumerate(sets):
      ax = axes[i, j]
      a = np.asarray(in_scores[name], np.float64)
      b = np.asarray(out_scores[set_name][name], np.float64)
      if name in log_x:
        a, b = np.log10(np.maximum(a, 1e-30)), np.log10(np.maximum(b, 1e-30))
      both = np.concatenate([a, b])
      lo, hi = np.percentile(both, [0.5, 99.5])  # a few extreme values would flatten the rest
      edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
      ax.hist(np.clip(a, edges[0], edges[-1]), edges, density=True, alpha=0.6, label="in")
      ax.hist(np.clip(b, edges[0], edges[-1]), edges, density=True, alpha=0.6, label="out")
      ax.set_yticks([])
      ax.tick_params(labelsize=6)
      if i == 0:
        ax.set_title(set_name, fontsize=8)
      if j == 0:
        ax.set_ylabel(f"log10 {name}" if name in log_x else name, fontsize=8)
  axes[0, 0].legend(fontsize=6)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig
