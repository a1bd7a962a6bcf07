"""CIFAR-10 from a JPEG copy in class folders, put back into the official order.

`<data_dir>/cifar10_jpeg/` holds `cifar10-jpeg.tar.gz` (`train/<class>/<NNNN>.jpg`,
`test/<class>/<NNNN>.jpg`) and one label file per split (`train_labels.txt`,
`test_labels.txt`: line i is the label 0-9 of official image i). File NNNN of
class c is the NNNN-th image of class c in the official order, so image i of
the split is `<c>/<k:04d>.jpg` where c is line i's label and k counts the
earlier lines with label c. The pixels are lossy (JPEG): runs on this copy
record their source as `SOURCE`.
"""

import pathlib

import numpy as np

from jaxinv.datasets import image_folder
from jaxinv.datasets.errors import DataError

ARCHIVE = "cifar10-jpeg.tar.gz"
LABEL_FILES = {"train": "train_labels.txt", "test": "test_labels.txt"}
SOURCE = "CIFAR-10 (JPEG copy)"


def has_files(folder: pathlib.Path) -> bool:
  # The folder, not the archive: a copy missing a file is reported, not silently skipped.
  return folder.is_dir()


def load_split(folder: pathlib.Path, split: str, *, cache_root: pathlib.Path,
               class_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images (N, 32, 32, 3) and int32 labels (N,) in the official order."""
  return image_folder.read_split(prepare(folder, cache_root, class_names), split)


def prepare(folder: pathlib.Path, cache_root: pathlib.Path,
            class_names: tuple[str, ...]) -> image_folder.Prepared:
  archive = folder / ARCHIVE
  label_paths = [folder / LABEL_FILES[s] for s in image_folder.SPLIT_FOLDERS]
  for path in (archive, *label_paths):
    if not path.is_file():
      raise DataError(f"cifar10: {path} is missing. {folder} must hold {ARCHIVE} and "
                      f"{', '.join(LABEL_FILES.values())}; or remove the folder to use "
                      f"the other CIFAR-10 sources.")
  target = cache_root / "jaxinv_cifar10_jpeg" / image_folder.fingerprint([archive, *label_paths])
  prepared = image_folder.read_prepared(target)
  if prepared is not None:
    return prepared
  tree = image_folder.scan(archive)
  arrays, like = {}, None
  for split, classes in tree.splits.items():
    if tuple(classes) != class_names:
      raise DataError(f"cifar10: {archive}'s {split}/ class folders are {tuple(classes)}, "
                      f"expected {class_names}. The archive is not the CIFAR-10 JPEG copy.")
    labels = read_labels(folder / LABEL_FILES[split], len(class_names))
    entries = official_order(labels, classes, class_names, folder / LABEL_FILES[split])
    images = image_folder.decode(entries, like)
    like = like or ((32, 32, 3), entries[0].where)
    if images.shape[1:] != (32, 32, 3):
      raise DataError(f"cifar10: {entries[0].where} is {images.shape[1:]}, not 32x32 RGB.")
    arrays[split] = (images, labels)
  return image_folder.write_prepared(target, arrays, class_names, SOURCE)


def read_labels(path: pathlib.Path, num_classes: int) -> np.ndarray:
  lines = path.read_text().split()
  try:
    labels = np.array([int(line) for line in lines], np.int32)
  except ValueError as e:
    raise DataError(f"cifar10: {path} must hold one integer label per line ({e}).") from e
  if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
    raise DataError(f"cifar10: {path} has a label outside 0..{num_classes - 1}.")
  return labels


def official_order(labels: np.ndarray, classes: dict, class_names, label_path) -> list:
  """The entries of one split reordered so entry i is official image i."""
  counts = np.bincount(labels, minlength=len(class_names))
  have = [len(classes[name]) for name in class_names]
  if len(labels) != sum(have) or list(counts) != have:
    raise DataError(
        f"cifar10: {label_path} has {len(labels):,} labels (per class {list(counts)}) but the "
        f"archive has {sum(have):,} images (per class {have}). Use the label file that came "
        f"with the archive.")
  order = []
  seen = np.zeros(len(class_names), int)
  by_name = {name: {e.where.rsplit("/", 1)[1]: e for e in classes[name]} for name in class_names}
  for label in labels:
    name, k = class_names[label], seen[label]
    entry = by_name[name].get(f"{k:04d}.jpg")
    if entry is None:
      raise DataError(f"cifar10: the archive has no {name}/{k:04d}.jpg, which the label file "
                      f"{label_path} needs. The archive is not the CIFAR-10 JPEG copy.")
    order.append(entry)
    seen[label] += 1
  return order
