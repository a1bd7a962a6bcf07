"""Pure functions from arrays to matplotlib Figures (no file system here)."""

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to files, never shown
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def to_display(images: np.ndarray) -> np.ndarray:
  """[-1, 1] NHWC → [0, 1], single-channel images squeezed to HW."""
  images = np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)
  return images[..., 0] if images.shape[-1] == 1 else images


def class_mosaic(images: np.ndarray, labels: np.ndarray, num_classes: int,
                 per_class: int = 10) -> np.ndarray:
  """One array: a row per class of up to `per_class` of its images, white between."""
  images, labels = to_display(images), np.asarray(labels)
  height, width = images.shape[1:3]
  gap = max(1, height // 14)
  cell_h, cell_w = height + gap, width + gap
  mosaic = np.ones((num_classes * cell_h - gap, per_class * cell_w - gap, *images.shape[3:]),
                   np.float32)  # white between and where a class has fewer images
  for k in range(num_classes):
    for j, index in enumerate(np.flatnonzero(labels == k)[:per_class]):
      mosaic[k * cell_h:k * cell_h + height, j * cell_w:j * cell_w + width] = images[index]
  return mosaic


def class_grid(images: np.ndarray, labels: np.ndarray, class_names, per_class: int = 10,
               title: str = "") -> plt.Figure:
  """One row per class, up to `per_class` images of that class in each row.

  Drawn as one mosaic in one axes: a grid of K×per_class subplots took 1–1.5 s to
  build, more than a tiny run's training, and every run writes one."""
  num_classes = len(class_names)
  mosaic = class_mosaic(images, labels, num_classes, per_class)
  cell_h = mosaic.shape[0] / num_classes
  fig, ax = plt.subplots(figsize=(per_class * 0.8, num_classes * 0.85))
  ax.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
  _blank(ax)
  ax.set_yticks([(k + 0.5) * cell_h for k in range(num_classes)],
                [str(name) for name in class_names], fontsize=8)
  ax.tick_params(length=0)
  if title:
    ax.set_title(title, fontsize=10)
  fig.tight_layout()
  return fig


def dataset_panels(panels, per_class: int, title: str = "") -> plt.Figure:
  """Side by side, one `(name, mosaic, class_names)` panel per dataset (the paper's
  Figure 2: a row per class, several generated images each)."""
  fig, axes = plt.subplots(1, len(panels), figsize=(len(panels) * (per_class * 0.55 + 1.0), 6.0),
                           squeeze=False)
  for ax, (name, mosaic, class_names) in zip(axes[0], panels):
    ax.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    _blank(ax)
    cell_h = mosaic.shape[0] / len(class_names)
    ax.set_yticks([(k + 0.5) * cell_h for k in range(len(class_names))],
                  [str(c) for c in class_names], fontsize=7)
    ax.tick_params(length=0)
    ax.set_title(name, fontsize=9)
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
      _blank(ax)
      if j < len(images):
        ax.imshow(images[j], cmap="gray", vmin=0.0, vmax=1.0)
    axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig


def _blank(ax):
  ax.set_xticks([])
  ax.set_yticks([])
  for spine in ax.spines.values():
    spine.set_visible(False)


def fixed_latent_grid(images: np.ndarray, class_names, title: str = "") -> plt.Figure:
  """`images [K, n, H, W, C]`: row k = class k, column j = latent z_j shared by every row,
  so a column shows what the conditioning alone changes."""
  images = np.asarray(images)
  if images.ndim != 5 or images.shape[0] != len(class_names):
    raise ValueError(f"fixed_latent_grid takes images [K={len(class_names)}, n, H, W, C]; "
                     f"got shape {images.shape}.")
  num_classes, per_class = images.shape[:2]
  shown = to_display(images.reshape(-1, *images.shape[2:])).reshape(num_classes, per_class,
                                                                    *images.shape[2:4], -1)
  fig, axes = plt.subplots(num_classes, per_class, figsize=(per_class * 0.8, num_classes * 0.85),
                           squeeze=False)
  for k in range(num_classes):
    for j in range(per_class):
      _blank(axes[k, j])
      img = shown[k, j]
      axes[k, j].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0.0, vmax=1.0)
    axes[k, 0].set_ylabel(str(class_names[k]), rotation=0, ha="right", va="center", fontsize=8)
  for j in range(per_class):
    axes[0, j].set_title(f"z{j}", fontsize=7)
  fig.suptitle(title or "one row per class, one latent per column", fontsize=10)
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


def interpolation_strip(images: np.ndarray, weights, row_names, title: str = "") -> plt.Figure:
  """`images [R, S, H, W, C]`: row r steps from one conditioning vector to another
  with a fixed latent; `weights [S]` is the share of the second vector in each column."""
  images = np.asarray(images)
  if images.ndim != 5 or images.shape[0] != len(row_names) or images.shape[1] != len(weights):
    raise ValueError(f"interpolation_strip takes images [R={len(row_names)}, S={len(weights)}, H, W, C]; "
                     f"got shape {images.shape}.")
  rows, cols = images.shape[:2]
  fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.9 + 0.4), squeeze=False)
  for r in range(rows):
    shown = to_display(images[r])
    for s in range(cols):
      _blank(axes[r, s])
      axes[r, s].imshow(shown[s], cmap="gray", vmin=0.0, vmax=1.0)
      if r == 0:
        axes[r, s].set_title(f"{weights[s]:.2f}", fontsize=7)
    axes[r, 0].set_ylabel(str(row_names[r]), rotation=0, ha="right", va="center", fontsize=8)
  fig.suptitle(title or "p = (1 − t)·p_a + t·p_b, fixed z (t above each column)", fontsize=9)
  fig.tight_layout()
  return fig


def _class_colours(num_classes: int):
  cmap = plt.get_cmap("tab10" if num_classes <= 10 else "tab20")
  return [cmap(k % cmap.N) for k in range(num_classes)]


def _scatter(ax, points, labels, class_names, title: str):
  colours = _class_colours(len(class_names))
  for k, name in enumerate(class_names):
    chosen = np.asarray(labels) == k
    if chosen.any():
      ax.scatter(points[chosen, 0], points[chosen, 1], s=4, color=colours[k], label=str(name),
                 alpha=0.7, linewidths=0)
  ax.set_title(title, fontsize=9)
  ax.set_xticks([])
  ax.set_yticks([])


def _side_by_side(panels, class_names, title: str) -> plt.Figure:
  """One scatter panel per `(points, labels, title)`, one shared legend."""
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.3, 4.2), squeeze=False)
  for ax, (points, labels, panel_title) in zip(axes[0], panels):
    _scatter(ax, points, labels, class_names, panel_title)
  handles, names = axes[0, 0].get_legend_handles_labels()
  fig.legend(handles, names, loc="center right", fontsize=7, markerscale=3, frameon=False)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout(rect=(0, 0, 1 - 1.3 / (4.2 * len(panels) + 1.3), 1))
  return fig


def pca_figure(features, labels, class_names, real_features=None, real_labels=None,
               title: str = "PCA of classifier features") -> plt.Figure:
  """Generated features on their first two principal axes, one colour per class;
  with `real_features`, a second panel projects real images on the same axes."""
  from jaxinv import projection
  points, pca = projection.pca_2d(features)
  panels = [(points, labels, "generated")]
  if real_features is not None:
    panels.append((pca.transform(np.asarray(real_features, np.float64).reshape(len(real_features), -1)),
                   real_labels, "real (same axes)"))
  return _side_by_side(panels, class_names, title)


def tsne_figure(features, labels, class_names, real_features=None, real_labels=None, seed: int = 0,
                title: str = "t-SNE of classifier features") -> plt.Figure:
  """t-SNE of generated features, one colour per class; with `real_features`, one
  joint embedding of both sets drawn in two panels (same coordinates)."""
  from jaxinv import projection
  features = np.asarray(features).reshape(len(features), -1)
  if real_features is None:
    return _side_by_side([(projection.tsne_2d(features, seed), labels, "generated")], class_names, title)
  real_features = np.asarray(real_features).reshape(len(real_features), -1)
  joint = projection.tsne_2d(np.concatenate([features, real_features]), seed)
  n = len(features)
  return _side_by_side([(joint[:n], labels, "generated"), (joint[n:], real_labels, "real")],
                       class_names, title + " (joint embedding)")


def decision_boundary_figure(features, labels, class_names, real_features=None, real_labels=None,
                             resolution: int = 200,
                             title: str = "class regions in the PCA plane") -> plt.Figure:
  """Classifier regions in a 2-D projection of the features.

  A classifier's own decision boundary lives in its high-dimensional feature space
  and has no exact 2-D picture. We fit PCA on the generated features, then colour
  each point of a grid over that plane by the nearest class mean *in the plane*
  (a nearest-centroid classifier): it has no parameters to tune, is exactly
  what the plane shows (linear boundaries, the perpendicular bisectors of the
  means) and marks where points of one class land in another's region. The
  title gives the share of points the regions classify correctly."""
  from jaxinv import projection
  labels = np.asarray(labels)
  num_classes = len(class_names)
  points, pca = projection.pca_2d(features)
  means = projection.class_means(points, labels, num_classes)
  panels = [(points, labels, "generated")]
  if real_features is not None:
    real = pca.transform(np.asarray(real_features, np.float64).reshape(len(real_features), -1))
    panels.append((real, np.asarray(real_labels), "real (same plane, same regions)"))
  everything = np.concatenate([p for p, _, _ in panels])
  lo, hi = everything.min(0), everything.max(0)
  pad = 0.05 * np.maximum(hi - lo, 1e-6)
  xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
  ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
  regions = projection.nearest_mean_regions(means, xs, ys)
  colours = np.array(_class_colours(num_classes))
  fig = _side_by_side(panels, class_names, title)
  for ax, (p, lab, panel_title) in zip(fig.axes, panels):
    ax.imshow(colours[regions][..., :3], origin="lower", extent=(xs[0], xs[-1], ys[0], ys[-1]),
              aspect="auto", alpha=0.25, zorder=0)
    inside = np.mean(projection.nearest_mean(p, means) == lab)
    ax.set_title(f"{panel_title}: {inside:.0%} in own region", fontsize=9)
  return fig


def loss_curves(records, title: str = "training curves") -> plt.Figure:
  """One panel per logged quantity of `metrics.jsonl` records (dicts with `step`)."""
  records = [r for r in records if "step" in r]
  if not records:
    raise ValueError("loss_curves needs at least one metrics record with a 'step'.")
  keys = sorted({k for r in records for k in r if k not in ("step", "time_s")})
  cols = min(3, max(len(keys), 1))
  rows = -(-len(keys) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
  for ax, key in zip(axes.flat, keys):
    pts = [(r["step"], r[key]) for r in records if key in r]
    steps, values = zip(*pts)
    ax.plot(steps, values, lw=1.2)
    ax.set_title(key, fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    if key.startswith("loss") and min(values) > 0 and max(values) / min(values) > 50:
      ax.set_yscale("log")
  for ax in list(axes.flat)[len(keys):]:
    ax.axis("off")
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig


def nearest_pairs_figure(images, nearest, scores, captions=None,
                         title: str = "generated (top) and its closest training image (bottom)") -> plt.Figure:
  """Two rows: generated images and, under each, the training image closest to it;
  `scores [N]` (e.g. SSIM) printed between them."""
  images, nearest = np.asarray(images), np.asarray(nearest)
  if images.shape != nearest.shape or len(scores) != len(images):
    raise ValueError(f"nearest_pairs_figure takes matching images {images.shape}, nearest "
                     f"{nearest.shape} and {len(images)} scores; got {len(scores)} scores.")
  n = len(images)
  fig, axes = plt.subplots(2, n, figsize=(n * 0.85, 2.2), squeeze=False)
  for row, batch in enumerate((to_display(images), to_display(nearest))):
    for j in range(n):
      _blank(axes[row, j])
      axes[row, j].imshow(batch[j], cmap="gray", vmin=0.0, vmax=1.0)
  for j in range(n):
    caption = f"{scores[j]:.2f}" if captions is None else f"{captions[j]}\n{scores[j]:.2f}"
    axes[1, j].set_xlabel(caption, fontsize=6)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig


def match_pairs(top, bottom, scores, labels, class_names, title: str = "",
                top_name: str = "reconstruction", bottom_name: str = "training") -> plt.Figure:
  """Matched pairs in columns: `top[i]` above `bottom[i]`, titled with its class and score."""
  top, bottom = to_display(top), to_display(bottom)
  n = max(len(top), 1)
  fig, axes = plt.subplots(2, n, figsize=(n * 0.9 + 0.8, 2.3), squeeze=False)
  for j in range(n):
    for row, images in enumerate((top, bottom)):
      _blank(axes[row, j])
      if j < len(images):
        axes[row, j].imshow(images[j], cmap="gray", vmin=0.0, vmax=1.0)
    if j < len(scores):
      axes[0, j].set_title(f"{class_names[labels[j]]}\n{scores[j]:.2f}", fontsize=7)
  axes[0, 0].set_ylabel(top_name, rotation=0, ha="right", va="center", fontsize=8)
  axes[1, 0].set_ylabel(bottom_name, rotation=0, ha="right", va="center", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig
