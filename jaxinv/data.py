"""Image-classification datasets as numpy arrays scaled to [-1, 1].

    images, labels = data.load("mnist", "train")   # float32 (N, 28, 28, 1), int32 (N,)

| name          | shape    | source                                                     |
|---------------|----------|------------------------------------------------------------|
| digits        | 28x28x1  | scikit-learn's bundled 8x8 digits, upsampled (no download) |
| mnist         | 28x28x1  | official IDX files -> TFDS array_record (no TensorFlow)    |
| fashion_mnist | 28x28x1  | same as mnist                                              |
| svhn_cropped  | 32x32x3  | official .mat files, else TFDS stock builder (TensorFlow)  |
| cifar10       | 32x32x3  | local JPEG copy, else binary batches, else TFDS (TensorFlow) |
| folder:PATH   | any      | your own `split/class/image` folder or .tar(.gz) of one    |

Local files are looked up in `data_dir` (default: env `JAXINV_DATA_DIR`),
one subfolder per dataset: `mnist/`, `fashion_mnist/`, `cifar10_jpeg/` or
`cifar10/`, `svhn_cropped/`. TFDS datasets, image folders and the CIFAR-10 JPEG copy are
prepared (decoded once) under `tfds_dir` (default: env `JAXINV_TFDS_DIR`,
else TFDS's default data dir) and reused on later calls. `source(name)`
says which copy a load reads, for run records. Problems with the data raise
`DataError`, a `ValueError` whose message names the file and the fix.

A `folder:PATH` dataset (`jaxinv.datasets.image_folder`) carries its path in
its name, so every command takes it as `--config.dataset=folder:PATH`; its
classes are the folder names, sorted, and `info()` reads them (and the image
shape) from the prepared data, preparing it on first use.
"""

import dataclasses
import os
import pathlib

import jax
import numpy as np

from jaxinv.datasets import cifar_bin
from jaxinv.datasets import cifar_jpeg
from jaxinv.datasets import digits
from jaxinv.datasets import image_folder
from jaxinv.datasets import svhn_mat
from jaxinv.datasets import idx_files
from jaxinv.datasets.errors import DataError

__all__ = ["DATASETS", "FOLDER_PREFIX", "SPLITS", "DataError", "DatasetInfo", "folder_path",
           "info", "is_dataset", "load", "resize_images", "source", "spec_problem"]

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion_mnist", "svhn_cropped", "cifar10")
SPLITS: tuple[str, ...] = ("train", "test")
FOLDER_PREFIX = "folder:"  # dataset "folder:PATH": an image folder or archive of one

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


def folder_path(name: str) -> pathlib.Path | None:
  """The path of a `folder:PATH` dataset name, else None."""
  if isinstance(name, str) and name.startswith(FOLDER_PREFIX):
    return pathlib.Path(name[len(FOLDER_PREFIX):]).expanduser()
  return None


def is_dataset(name: str) -> bool:
  """Whether `name` names a dataset: one of `DATASETS`, or `folder:PATH`."""
  return name in _INFOS or folder_path(name) is not None


def spec_problem(name: str) -> str | None:
  """Why dataset `name` cannot load, from cheap checks only (no decoding); None if none found."""
  path = folder_path(name)
  if path is not None:
    if name == FOLDER_PREFIX:
      return f"'{FOLDER_PREFIX}' needs a path: {FOLDER_PREFIX}PATH/TO/FOLDER_OR_ARCHIVE"
    return image_folder.source_problem(path)
  if name not in _INFOS:
    return f"one of {DATASETS}, or {FOLDER_PREFIX}PATH for an image folder or archive"
  return None


def info(name: str, *, tfds_dir: str | os.PathLike | None = None) -> DatasetInfo:
  """Shape and classes of dataset `name`, without loading anything.

  A `folder:PATH` dataset is the exception: its classes and shape are those of
  its prepared data, so the first call prepares it (decodes it once) under
  `tfds_dir` (see `load`).
  """
  path = folder_path(name)
  if path is not None:
    prepared = image_folder.prepare(path, _prepared_root(tfds_dir))
    return DatasetInfo(name, prepared.image_shape, len(prepared.class_names),
                       prepared.class_names)
  if name not in _INFOS:
    raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}, "
                     f"or {FOLDER_PREFIX}PATH")
  return _INFOS[name]


def source(name: str, *, data_dir: str | os.PathLike | None = None,
           download: bool | None = None) -> str:
  """Which copy of dataset `name` `load` reads with these arguments, in words, for run
  records (e.g. "CIFAR-10 (JPEG copy)": lossy pixels, unlike the official files)."""
  path = folder_path(name)
  if path is not None:
    return f"image folder {path.absolute()}"
  info(name)  # unknown names fail here
  data_dir = _resolve_dir(data_dir, DATA_DIR_ENV)
  if name == "cifar10":
    local = _cifar10_local(data_dir, download)
    if local is not None:
      return (cifar_jpeg.SOURCE if local.name == "cifar10_jpeg"
              else "CIFAR-10 (binary batches in " + str(local) + ")")
    return "CIFAR-10 (TFDS)"
  if name in ("mnist", "fashion_mnist"):
    return f"{name} (official IDX files)"
  if name == "svhn_cropped" and _svhn_local(data_dir, download) is not None:
    return svhn_mat.SOURCE
  if name == "digits":
    return "scikit-learn digits, upsampled to 28x28"
  return f"{name} (TFDS)"


def load(name: str, split: str, *, data_dir: str | os.PathLike | None = None,
         tfds_dir: str | os.PathLike | None = None,
         download: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Images float32 (N, H, W, C) in [-1, 1] (pixel / 127.5 - 1) and labels int32 (N,).

  Args:
    name: one of `DATASETS`.
    split: "train" or "test".
    data_dir: folder with one subfolder of local files per dataset; default
      env `JAXINV_DATA_DIR`. Unused by digits.
    tfds_dir: where TFDS prepares and finds its datasets; default env
      `JAXINV_TFDS_DIR`, else TFDS's default data dir.
    download: False never downloads; None (default) downloads only when no
      local files are found; True uses the official source even when local
      files exist. A dataset already prepared under `tfds_dir` is reused
      either way.
  """
  expected = info(name, tfds_dir=tfds_dir)
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


def _prepared_root(tfds_dir) -> pathlib.Path:
  """Where decoded image folders go: beside the TFDS datasets (TFDS's own default
  without importing TFDS, which takes seconds)."""
  root = _resolve_dir(tfds_dir, TFDS_DIR_ENV)
  return root if root is not None else pathlib.Path(
      os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def _cifar10_local(data_dir, download) -> pathlib.Path | None:
  """The local CIFAR-10 folder `load` reads: the JPEG copy, else binary batches, else None."""
  if download is True or data_dir is None:
    return None
  if cifar_jpeg.has_files(data_dir / "cifar10_jpeg"):
    return data_dir / "cifar10_jpeg"
  if cifar_bin.has_files(data_dir / "cifar10"):
    return data_dir / "cifar10"
  return None


def _svhn_local(data_dir, download) -> pathlib.Path | None:
  """The local SVHN folder (official .mat files) `load` reads, else None (TFDS)."""
  if download is True or data_dir is None or not svhn_mat.has_files(data_dir / "svhn_cropped"):
    return None
  return data_dir / "svhn_cropped"


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
  path = folder_path(name)
  if path is not None:
    return image_folder.read_split(image_folder.prepare(path, _prepared_root(tfds_dir)), split)
  if name == "cifar10":
    local = _cifar10_local(data_dir, download)
    if local is not None and local.name == "cifar10_jpeg":
      return cifar_jpeg.load_split(local, split, cache_root=_prepared_root(tfds_dir),
                                   class_names=_INFOS["cifar10"].class_names)
    if local is not None:
      return cifar_bin.load_split(local, split)
  if name == "svhn_cropped" and (svhn_local := _svhn_local(data_dir, download)) is not None:
    return svhn_mat.load_split(svhn_local, split)
  # TFDS is imported only when a TFDS dataset is loaded: it takes seconds to import,
  # and models, steps and benchmarks need none of it.
  from jaxinv.datasets import idx_tfds, stock_tfds
  if name in idx_tfds.BUILDERS:
    return idx_tfds.load_split(name, split, data_dir=data_dir, tfds_dir=tfds_dir,
                               download=download)
  if name == "cifar10":
    return stock_tfds.load_split(
        name, split, tfds_dir=tfds_dir, download=download,
        local_hint=(", or put the CIFAR-10 binary batches (data_batch_*.bin, "
                    "test_batch*.bin) in <data_dir>/cifar10/, or the JPEG copy "
                    "(cifar10-jpeg.tar.gz and its label files) in <data_dir>/cifar10_jpeg/, "
                    "and set JAXINV_DATA_DIR"))
  return stock_tfds.load_split(name, split, tfds_dir=tfds_dir, download=download,
                               local_hint=(", or put the official train_32x32.mat and "
                                           "test_32x32.mat in <data_dir>/svhn_cropped/ and set "
                                           "JAXINV_DATA_DIR"))


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
