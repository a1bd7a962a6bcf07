"""CIFAR-10 in its official binary format (`cifar-10-batches-bin`), read with numpy.

Each image is one 3073-byte record: a label byte, then the 1024 red, 1024
green and 1024 blue bytes of a 32x32 image in row-major order; files have no
header. Any file named like the official batches counts, so the full
`data_batch_{1..5}.bin` / `test_batch.bin` and subsets such as
`data_batch_1_first200.bin` both load.
"""

import pathlib

import numpy as np

from jaxinv.datasets.errors import DataError

_SPLIT_PATTERNS = {"train": "data_batch_*.bin", "test": "test_batch*.bin"}
_RECORD_BYTES = 1 + 3 * 32 * 32
_NUM_CLASSES = 10


def has_files(folder: pathlib.Path) -> bool:
  return any(any(folder.glob(p)) for p in _SPLIT_PATTERNS.values())


def load_split(folder: pathlib.Path, split: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images (N, 32, 32, 3) and uint8 labels (N,) from every batch file of `split`."""
  # Sorted, so data_batch_1 comes before data_batch_2 as in the official order.
  paths = sorted(folder.glob(_SPLIT_PATTERNS[split]))
  if not paths:
    raise DataError(
        f"cifar10: {folder} has no {split} files ({_SPLIT_PATTERNS[split]}). Add the "
        f"official binary batches there, or remove the folder to use TFDS's cifar10.")
  batches = [_read_batch(p) for p in paths]
  return (np.concatenate([images for images, _ in batches]),
          np.concatenate([labels for _, labels in batches]))


def _read_batch(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  data = np.fromfile(path, dtype=np.uint8)
  if data.size == 0 or data.size % _RECORD_BYTES:
    raise DataError(
        f"cifar10: {path} is {data.size:,} bytes, not a positive multiple of the "
        f"{_RECORD_BYTES}-byte CIFAR-10 record, so it is truncated or not a CIFAR-10 "
        f"binary batch. Re-download cifar-10-binary.tar.gz from "
        f"https://www.cs.toronto.edu/~kriz/cifar.html.")
  records = data.reshape(-1, _RECORD_BYTES)
  labels = records[:, 0]
  if labels.max() >= _NUM_CLASSES:
    raise DataError(f"cifar10: {path} has label {labels.max()}, not in 0..{_NUM_CLASSES - 1}")
  # Planes are stored channel-first (R, G, B); images are returned HWC.
  images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
  return images, labels
