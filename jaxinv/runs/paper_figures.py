"""The paper's figures from finished runs, one command each:

    jaxinv figure inversions --workdir MNIST_INV --workdir FASHION_INV --workdir CIFAR_INV --out fig2.png
    jaxinv figure reconstructions --workdir TLDR_MNIST --workdir TLDR_FASHION --out fig5.png

Figure 2: images generated for every class by each `jaxinv invert` run, one panel per
run (dataset). Figure 5: each `jaxinv reconstruct` run's reconstructions above the
training images they match best (SSIM), highest first.
"""

import json

import jax
import numpy as np
from etils.epath import Path

from jaxinv import data, paths, plotting, sampling
from jaxinv.runs import draw, inversion

_DATASET_NAMES = {"digits": "digits", "mnist": "MNIST", "fashion_mnist": "Fashion-MNIST",
                  "cifar10": "CIFAR-10", "svhn_cropped": "SVHN"}


def _name(dataset: str, data_dir=None) -> str:
  name = _DATASET_NAMES.get(dataset, dataset)
  if dataset == "cifar10" and "JPEG" in data.source(dataset, data_dir=data_dir or None):
    name += " (JPEG copy)"
  return name


def inversions(workdirs, *, num_per_class: int = 6, seed: int = 0):
  """Figure 2: one panel of `num_per_class` generated images per class for each run (by
  rejection where a run's `generator.accept_threshold` asks for it)."""
  panels = []
  for workdir in workdirs:
    generator, variables, config = inversion.restore(workdir)
    info = data.info(config.dataset)
    labels = sampling.labels_for(num_per_class, range(info.num_classes))
    images, _ = draw.images(generator, jax.device_get(variables), labels, jax.random.key(seed),
                            config, draw.acceptor(config, draw.threshold(config)))
    panels.append((_name(config.dataset, config.data_dir),
                   plotting.class_mosaic(images, labels, info.num_classes, num_per_class),
                   info.class_names))
  return plotting.dataset_panels(panels, num_per_class,
                                 title="Generated images, one row per requested class")


def reconstructions(workdirs, *, pairs: int = 8):
  """Figure 5: per run, its `pairs` reconstructions with the highest SSIM to a training
  image, above those training images."""
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(2 * len(workdirs), pairs, figsize=(pairs * 0.9 + 1.2, 2.1 * len(workdirs)),
                           squeeze=False)
  for r, workdir in enumerate(workdirs):
    workdir = Path(workdir)
    audit = json.loads((workdir / "audit.json").read_text())
    saved = paths.load_npz(workdir / "reconstructions.npz")
    train_x, _ = data.load(audit["dataset"], "train")
    order = np.argsort(-saved["best_ssim"])[:pairs]
    top = plotting.to_display(saved["images"][order])
    bottom = plotting.to_display(train_x[saved["best_train_index"][order]])
    for j in range(pairs):
      for row, images in ((2 * r, top), (2 * r + 1, bottom)):
        axes[row, j].set_xticks([])
        axes[row, j].set_yticks([])
        if j < len(images):
          axes[row, j].imshow(images[j], cmap="gray", vmin=0.0, vmax=1.0)
      if j < len(order):
        axes[2 * r, j].set_title(f"{saved['best_ssim'][order[j]]:.2f}", fontsize=7)
    axes[2 * r, 0].set_ylabel(f"{_name(audit['dataset'])}\nreconstruction", fontsize=7)
    axes[2 * r + 1, 0].set_ylabel("training", fontsize=7)
  fig.suptitle("Training-like reconstructions and their best-matching training images (SSIM)",
               fontsize=9)
  fig.tight_layout()
  return fig
