"""Datasets from TFDS's stock builders (`cifar10`, `svhn_cropped`).

Those builders store PNG-encoded images, and TFDS encodes and decodes PNG
through TensorFlow, so this path needs the optional `tensorflow` extra.
"""

import importlib.util

import numpy as np
import tensorflow_datasets as tfds

from jaxinv.datasets.errors import DataError


def _require_tensorflow(name: str, local_hint: str) -> None:
  # Checked up front: without it TFDS fails deep inside preparation, possibly
  # after a long download, with a bare ModuleNotFoundError.
  if importlib.util.find_spec("tensorflow") is None:
    raise DataError(
        f"{name}: TFDS's stock '{name}' builder needs TensorFlow, which is not "
        f"installed. Run: pip install 'jaxinv[tensorflow]'{local_hint}.")


def load_split(name: str, split: str, *, tfds_dir: str | None, download: bool | None,
               local_hint: str = "") -> tuple[np.ndarray, np.ndarray]:
  """uint8 images (N, H, W, C) and int labels (N,) of a stock TFDS dataset.

  `local_hint` is appended to the missing-TensorFlow message, to name a
  TensorFlow-free alternative where one exists.
  """
  _require_tensorflow(name, local_hint)
  builder = tfds.builder(name, data_dir=tfds_dir, file_format=tfds.core.FileFormat.ARRAY_RECORD)
  if not builder.is_prepared():
    if download is False:
      raise DataError(f"{name}: not prepared under {builder.data_dir} and download=False.")
    try:
      builder.download_and_prepare()
    except Exception as e:  # TFDS raises many kinds (HTTP, connection, checksum)
      raise DataError(f"{name}: TFDS could not download and prepare it: {e}") from e
  source = builder.as_data_source(split=split)
  # One batched read; see idx_tfds._read.
  examples = source.__getitems__(list(range(len(source))))
  images = np.stack([e["image"] for e in examples])
  labels = np.fromiter((e["label"] for e in examples), np.int32, count=len(examples))
  return images, labels
