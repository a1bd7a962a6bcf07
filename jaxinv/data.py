"""Image-classification datasets as numpy arrays scaled to [-1, 1].

    images, labels = data.load("mnist", "train")   # float32 (N, 28, 28, 1), int32 (N,)

| name          | shape    | source                                                     |
|---------------|----------|------------------------------------------------------------|
| digits        | 28x28x1  | scikit-learn's bundled 8x8 digits, upsampled (no download) |
| mnist         | 28x28x1  | official IDX files -> TFDS array_record (no TensorFlow)    |
| fashion_mnist | 28x28x1  | same as mnist                                              |
| svhn_cropped  | 32x32x3  | TFDS stock builder (needs TensorFlow)                      |
| cifar10       | 32x32x3  | local CIFAR binary batches, else TFDS stock (TensorFlow)   |

Local files are looked up in `data_dir` (default: env `JAXINV_DATA_DIR`),
one subfolder per dataset: `mnist/`, `fashion_mnist/`, `cifar10/`. TFDS
datasets are prepared under `tfds_dir` (default: env `JAXINV_TFDS_DIR`, else
TFDS's default data dir) and reused on later calls. Problems with the data
raise `DataError`, a `ValueError` whose message names the file and the fix.
"""

import dataclasses
import os
import pathlib

import jax
import numpy as np

from jaxinv.datasets import cifar_bin
from jaxinv.datasets import digits
from jaxinv.datasets import idx_files
from jaxinv.datasets.errors import DataError

__all__ = ["DATASETS", "SPLITS", "DataError", "DatasetInfo", "info", "load", "resize_images"]

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "svhn_cropped", "cifar10")
SPLITS: tuple[str, ...] = ("train", "test")

DATA_DIR_ENV = "JAXINV_DATA_DIR"
TFDS_DIR_ENV = "JAXINV_TFDS_DIR"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  image_shape: tuple[int, int, int]  # (height, width, channels)
  num_classes: int
  class_names: tuple[str, ...]


_DIGIT_NAMES = tuple(str(i) for i in range(10))
_INFOS = {
    "digits": DatasetInfo("digits", (28, 28, 1), 10, _DIGIT_NAMES),
    "mnist": DatasetInfo("mnist", (28, 28, 1), 10, idx_files.SOURCES["mnist"].class_names),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", (28, 28, 1), 10, idx_files.SOURCES["fashion_mnist"].class_names),
    "svhn_cropped": DatasetInfo("svhn_cropped", (32, 32, 3), 10, _DIGIT_NAMES),
    "cifar10": DatasetInfo(
        "cifar10", (32, 32, 3), 10,
        ("airplane", "automobile", "bird", "cat", "deer",
         "dog", "frog", "horse", "ship", "truck")),
}


def info(name: str) -> DatasetInfo:
  """Shape and classes of dataset `name`, without loading anything."""
  if name not in _INFOS:
    raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
  return _INFOS[name]


def load(name: str, split: str, *, data_dir: str | os.PathLike | None = None,
         tfds_dir: str | os.PathLike | None = None,
         download: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Images float32 (N, H, W, C) in [-1, 1] (pixel / 127.5 - 1) and labels int32 (N,).

  Args:
    name: one of `DATASETS`.
    split: "train" or "test".
    data_dir: folder with one subfolder of local files per dataset; default
      env `JAXINV_DATA_DIR`. Unused by digits and svhn_cropped.
    tfds_dir: where TFDS prepares and finds its datasets; default env
      `JAXINV_TFDS_DIR`, else TFDS's default data dir.
    download: False never downloads; None (default) downloads only when no
      local files are found; True uses the official source even when local
      files exist. A dataset already prepared under `tfds_dir` is reused
      either way.
  """
  expected = info(name)
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r} for {name}; allowed: {', '.join(SPLITS)}")
  if data_dir is None:
    data_dir = os.environ.get(DATA_DIR_ENV) or None
  if data_dir is not None and "://" in os.fspath(data_dir):  # a bucket: read from a local copy
    data_dir = _local_mirror(os.fspath(data_dir), name)
  data_dir = _resolve_dir(data_dir, DATA_DIR_ENV)
  tfds_dir = _resolve_dir(tfds_dir, TFDS_DIR_ENV)
  tfds_dir = os.fspath(tfds_dir) if tfds_dir is not None else None

  images, labels = _load_uint8(name, split, data_dir, tfds_dir, download)
  if images.shape[1:] != expected.image_shape:  # guards every reader at once
    raise DataError(f"{name} {split}: images are {images.shape[1:]}, "
                    f"expected {expected.image_shape}")
  scaled = images.astype(np.float32)
  scaled /= 127.5  # in place: for 60k MNIST images each temporary would be 188 MB
  scaled -= 1.0
  return scaled, labels.astype(np.int32)


def _resolve_dir(path, env_var: str) -> pathlib.Path | None:
  path = path if path is not None else os.environ.get(env_var) or None
  return pathlib.Path(path).expanduser() if path is not None else None


def _local_mirror(cloud_dir: str, name: str) -> pathlib.Path:
  """A bucket's data folder (gs://.../NAME/) copied once into a local cache through
  etils.epath: the readers checksum, decompress and memory-map local files. Files whose
  size matches are not copied again. Returns the cache's data_dir (holding NAME/)."""
  from etils import epath

  from jaxinv import paths
  paths.check_filesystem(cloud_dir)
  cache = pathlib.Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "jaxinv" / "data"
  local = cache / cloud_dir.replace("://", "/")
  source = epath.Path(cloud_dir) / name
  if source.is_dir():
    (local / name).mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
      target = local / name / item.name
      if item.is_file() and not (target.is_file() and target.stat().st_size == item.stat().length):
        target.write_bytes(item.read_bytes())
  return local


def _load_uint8(name, split, data_dir, tfds_dir, download):
  if name == "digits":
    return digits.load_split(split)
  # TFDS is imported only when a TFDS dataset is loaded: it takes seconds to import,
  # and models, steps and benchmarks need none of it.
  from jaxinv.datasets import idx_tfds, stock_tfds
  if name in idx_tfds.BUILDERS:
    return idx_tfds.load_split(name, split, data_dir=data_dir, tfds_dir=tfds_dir,
                               download=download)
  if name == "cifar10":
    local = data_dir / "cifar10" if data_dir is not None else None
    if download is not True and local is not None and cifar_bin.has_files(local):
      return cifar_bin.load_split(local, split)
    return stock_tfds.load_split(
        name, split, tfds_dir=tfds_dir, download=download,
        local_hint=(", or put the CIFAR-10 binary batches (data_batch_*.bin, "
                    "test_batch*.bin) in <data_dir>/cifar10/ and set JAXINV_DATA_DIR"))
  return stock_tfds.load_split(name, split, tfds_dir=tfds_dir, download=download)


def resize_images(images: np.ndarray, shape: tuple[int, int, int],
                  *, batch_size: int = 4096) -> np.ndarray:
  """Convert images (N, H, W, C) to `shape` = (height, width, channels).

  Bilinear resizing (antialiased when shrinking, so values stay in the input
  range); RGB -> gray by the channel mean, gray -> RGB by repetition. Used to
  feed one dataset to a model trained on another (e.g. out-of-distribution
  tests). Works in batches to bound memory; returns float32.
  """
  height, width, channels = shape
  in_channels = images.shape[-1]
  if (in_channels, channels) not in ((1, 1), (3, 3), (1, 3), (3, 1)):
    raise ValueError(f"cannot convert {in_channels} channels to {channels}; "
                     f"only 1 <-> 3 channel conversions are supported")
  out = np.empty((len(images), height, width, channels), np.float32)
  for start in range(0, len(images), batch_size):
    batch = np.asarray(images[start:start + batch_size], np.float32)
    # Averaging before resizing (or repeating after) keeps the work on the
    # fewer channels; both are linear, so the order does not change the result.
    if channels < in_channels:
      batch = batch.mean(axis=-1, keepdims=True)
    batch = jax.image.resize(batch, (len(batch), height, width, batch.shape[-1]),
                             method="linear", antialias=True)
    out[start:start + len(batch)] = np.asarray(batch)  # broadcasts 1 -> 3 channels
  return out
