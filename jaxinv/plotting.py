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
