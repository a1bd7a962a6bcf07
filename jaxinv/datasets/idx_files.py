"""The official MNIST and Fashion-MNIST files: checksums, download and IDX parsing.

Both datasets ship as the same four gzipped IDX files. Each file is checked
against its published size and md5 before any of it is used, so a truncated,
corrupted or substituted file fails loudly instead of training on bad data.
"""

import dataclasses
import gzip
import hashlib
import os
import pathlib
import struct
import tempfile
import urllib.error
import urllib.request

import numpy as np

from jaxinv.datasets.errors import DataError

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FILENAMES = tuple(f for pair in SPLIT_FILES.values() for f in pair)

_IMAGES_MAGIC = 0x00000803  # uint8 data (0x08), 3 dimensions
_LABELS_MAGIC = 0x00000801  # uint8 data (0x08), 1 dimension
_IMAGE_SIZE = (28, 28)
_NUM_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class OfficialFile:
  size: int  # bytes of the .gz file
  md5: str   # of the .gz file


@dataclasses.dataclass(frozen=True)
class IdxSource:
  """Where a dataset's four IDX files come from and what they must hash to."""

  name: str
  url: str  # base URL; file names are appended
  homepage: str
  class_names: tuple[str, ...]
  files: dict[str, OfficialFile]


SOURCES = {
    "mnist": IdxSource(
        name="mnist",
        url="https://storage.googleapis.com/cvdf-datasets/mnist/",
        homepage="http://yann.lecun.com/exdb/mnist/",
        class_names=tuple(str(i) for i in range(10)),
        files={
            "train-images-idx3-ubyte.gz": OfficialFile(9_912_422, "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            "train-labels-idx1-ubyte.gz": OfficialFile(28_881, "d53e105ee54ea40749a09fcbcd1e9432"),
            "t10k-images-idx3-ubyte.gz": OfficialFile(1_648_877, "9fb629c4189551a2d022fa330f9573f3"),
            "t10k-labels-idx1-ubyte.gz": OfficialFile(4_542, "ec29112dd5afa0611ce80d1b7f02629c"),
        },
    ),
    "fashion_mnist": IdxSource(
        name="fashion_mnist",
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        homepage="https://github.com/zalandoresearch/fashion-mnist",
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        files={
            "train-images-idx3-ubyte.gz": OfficialFile(26_421_880, "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            "train-labels-idx1-ubyte.gz": OfficialFile(29_515, "25c81989df183df01b3e8a0aad5dffbe"),
            "t10k-images-idx3-ubyte.gz": OfficialFile(4_422_102, "bef4ecab320f06d8554ea6380940ec79"),
            "t10k-labels-idx1-ubyte.gz": OfficialFile(5_148, "bb300cfdad3c16e7a12a480ee83cd310"),
        },
    ),
}


def _fix_hint(source: IdxSource, filename: str) -> str:
  return (f"Re-download it from {source.url}{filename}, or point JAXINV_DATA_DIR "
          f"(or data_dir=) at a folder whose '{source.name}/' subfolder holds the "
          f"four official files.")


# ---------------------------------------------------------------- checksums

# md5 by (resolved path, size, mtime_ns): a file that has not changed since it
# was last hashed is not read again, so repeated loads in a process are cheap.
_md5_cache: dict[tuple[str, int, int], str] = {}


def file_md5(path: pathlib.Path) -> str:
  stat = path.stat()
  key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
  if key not in _md5_cache:
    digest = hashlib.md5()
    with open(path, "rb") as f:
      while chunk := f.read(1 << 20):
        digest.update(chunk)
    _md5_cache[key] = digest.hexdigest()
  return _md5_cache[key]


def has_any_file(folder: pathlib.Path) -> bool:
  """Whether `folder` holds any of the four files (then it must hold all four)."""
  return any((folder / f).exists() for f in FILENAMES)


def verify_file(source: IdxSource, path: pathlib.Path) -> None:
  """Raise `DataError` unless `path` is the official file of the same name."""
  expected = source.files[path.name]
  if not path.is_file():
    raise DataError(f"{source.name}: {path} is missing. {_fix_hint(source, path.name)}")
  size, md5 = path.stat().st_size, file_md5(path)
  if (size, md5) != (expected.size, expected.md5):
    raise DataError(
        f"{source.name}: {path} is not the official {path.name}: "
        f"size {size:,} bytes (expected {expected.size:,}), "
        f"md5 {md5} (expected {expected.md5}). The file is truncated, "
        f"corrupted or a different file. {_fix_hint(source, path.name)}")


def verify_folder(source: IdxSource, folder: pathlib.Path) -> None:
  for filename in FILENAMES:
    verify_file(source, folder / filename)


# ----------------------------------------------------------------- download

def download(source: IdxSource, folder: pathlib.Path, timeout_s: float = 60.0) -> None:
  """Fetch whichever official files in `folder` are absent or invalid, then verify.

  A plain urllib fetch with a timeout and no retries: without network access
  this fails within `timeout_s` with a message saying how to work offline.
  """
  folder.mkdir(parents=True, exist_ok=True)
  for filename in FILENAMES:
    path = folder / filename
    try:
      verify_file(source, path)
      continue  # already downloaded by an earlier call
    except DataError:
      pass
    _fetch(source.url + filename, path, timeout_s, source)
    verify_file(source, path)


def _fetch(url: str, path: pathlib.Path, timeout_s: float, source: IdxSource) -> None:
  # Write to a temporary name and rename, so an interrupted download never
  # leaves a partial file under the final name.
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
  try:
    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as response:
      while chunk := response.read(1 << 20):
        out.write(chunk)
    os.replace(tmp, path)
  except (urllib.error.URLError, OSError) as e:  # URLError, timeouts, HTTP errors
    raise DataError(
        f"{source.name}: could not download {url}: {e}. Without network access, "
        f"put the four official files in <data_dir>/{source.name}/ and set "
        f"JAXINV_DATA_DIR (or data_dir=) to <data_dir>.") from e
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


# ------------------------------------------------------------------- parsing

def read_idx(path: pathlib.Path, magic: int) -> np.ndarray:
  """The uint8 array in a gzipped IDX file, after checking header and length."""
  try:
    with gzip.open(path, "rb") as f:
      data = f.read()
  except (OSError, EOFError) as e:  # not gzip, or cut short
    raise DataError(f"{path} is not a readable gzip file: {e}") from e
  ndim = magic & 0xFF
  header_size = 4 + 4 * ndim
  if len(data) < header_size or struct.unpack(">I", data[:4])[0] != magic:
    found = data[:4].hex() if len(data) >= 4 else "nothing"
    raise DataError(f"{path}: expected IDX magic 0x{magic:08x}, found {found}")
  shape = struct.unpack(f">{ndim}I", data[4:header_size])  # big-endian counts
  values = np.frombuffer(data, np.uint8, offset=header_size)
  if values.size != np.prod(shape):
    raise DataError(f"{path}: header says shape {shape} ({np.prod(shape)} values) "
                    f"but the file holds {values.size} values")
  return values.reshape(shape)


def read_split(folder: pathlib.Path, split: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images (N, 28, 28) and uint8 labels (N,) of one split."""
  images_file, labels_file = SPLIT_FILES[split]
  images = read_idx(folder / images_file, _IMAGES_MAGIC)
  labels = read_idx(folder / labels_file, _LABELS_MAGIC)
  if images.shape[1:] != _IMAGE_SIZE:
    raise DataError(f"{folder / images_file}: images are {images.shape[1:]}, expected {_IMAGE_SIZE}")
  if len(images) != len(labels):
    raise DataError(f"{folder}: {len(images)} images in {images_file} but "
                    f"{len(labels)} labels in {labels_file}")
  if labels.max(initial=0) >= _NUM_CLASSES:
    raise DataError(f"{folder / labels_file}: label {labels.max()} is not in 0..{_NUM_CLASSES - 1}")
  return images, labels
