"""SVHN (cropped digits) from the official `.mat` files, without TensorFlow.

`<data_dir>/svhn_cropped/` holds `train_32x32.mat` and `test_32x32.mat` as published at
ufldl.stanford.edu/housenumbers: `X` is 32×32×3×N uint8, `y` is N×1 with the labels 1–10,
10 standing for the digit 0. TFDS's `svhn_cropped` (the other source) maps them the same
way: label = digit. Read with scipy (a scikit-learn dependency already).
"""

import pathlib

import numpy as np

from jaxinv.datasets.errors import DataError

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
SOURCE = "SVHN (official .mat files)"


def has_files(folder: pathlib.Path) -> bool:
  return folder.is_dir()


def load_split(folder: pathlib.Path, split: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images (N, 32, 32, 3) and int32 labels (N,) 0–9 in the file's order."""
  import scipy.io

  path = folder / FILES[split]
  if not path.is_file():
    raise DataError(f"svhn_cropped: {path} is missing. {folder} must hold "
                    f"{' and '.join(FILES.values())} (ufldl.stanford.edu/housenumbers), "
                    "or remove the folder to use TFDS's svhn_cropped.")
  try:
    mat = scipy.io.loadmat(path, variable_names=["X", "y"])
  except Exception as e:  # scipy raises ValueError, TypeError or its own for non-.mat files
    raise DataError(f"svhn_cropped: {path} is not a MATLAB .mat file ({e}); "
                    "download the official file again.") from e
  if "X" not in mat or "y" not in mat:
    raise DataError(f"svhn_cropped: {path} lacks the variables X and y of the official files.")
  x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
  if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
    raise DataError(f"svhn_cropped: {path}'s X is {x.dtype} {x.shape}, expected uint8 "
                    "32×32×3×N (the official layout).")
  if len(y) != x.shape[3]:
    raise DataError(f"svhn_cropped: {path} has {x.shape[3]} images but {len(y)} labels.")
  if len(y) and (y.min() < 1 or y.max() > 10):
    raise DataError(f"svhn_cropped: {path}'s labels span {y.min()}–{y.max()}, expected 1–10.")
  images = np.ascontiguousarray(np.transpose(x, (3, 0, 1, 2)))
  return images, (y % 10).astype(np.int32)
