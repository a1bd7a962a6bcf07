"""Image folders (`split/class/image`, PNG or JPEG) and tar archives of them, decoded once.

The layout is torchvision's ImageFolder / Kaggle's, one tree per split:

    <root>/train/<class>/<image>.png|.jpg|.jpeg
    <root>/test/<class>/<image>...        (or val/, valid/, validation/)

`<root>` is a folder or a `.tar` / `.tar.gz` of one (optionally wrapped in a
single top folder). Class names are the folder names, sorted; label k is the
k-th name. Inside a class, images are taken in file-name order. Hidden files
(`.DS_Store`, `._x.png`) and `__MACOSX/` are skipped; files directly under
`<root>` or in other top folders are ignored; anything else that is not an
image is an error.

Decoding happens once: the arrays and the class names are written to a
prepared folder (`np.save` without pickle, plus `info.json`) whose name holds
a fingerprint of the source, and later loads read that folder. A prepared
folder appears whole or not at all (written under a temporary name, then
renamed), so an interrupted preparation is redone, never half read.
"""

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import shutil
import tarfile
import tempfile
import zlib
from typing import Callable

import numpy as np

from jaxinv.datasets.errors import DataError

SPLIT_FOLDERS = {"train": ("train",), "test": ("test", "val", "valid", "validation")}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Bumped when the prepared files change meaning, so older ones are not reused.
_PREPARED_VERSION = "1"
_LAYOUT = "<root>/train/<class>/<image> and <root>/test/<class>/<image> (PNG or JPEG)"


@dataclasses.dataclass(frozen=True)
class Entry:
  """One image file: where it is (for messages) and how to read its bytes."""

  where: str
  read: Callable[[], bytes]


@dataclasses.dataclass(frozen=True)
class Tree:
  """The classes of each split: `splits[split][class] = [Entry, ...]` in file-name order."""

  source: pathlib.Path
  splits: dict[str, dict[str, list[Entry]]]
  split_folders: dict[str, str]  # split -> the folder name it was read from


@dataclasses.dataclass(frozen=True)
class Prepared:
  folder: pathlib.Path
  class_names: tuple[str, ...]
  image_shape: tuple[int, int, int]
  counts: dict[str, int]
  source: str  # what the data is, for run records


def source_problem(path: pathlib.Path) -> str | None:
  """A cheap check before anything runs: why `path` cannot be an image-folder source, or None."""
  if not path.exists():
    return f"{path} does not exist; give a folder laid out as {_LAYOUT}, or a .tar/.tar.gz of one"
  if path.is_dir():
    return None
  if not tarfile.is_tarfile(path):
    return (f"{path} is a file but not a tar archive; give a folder laid out as {_LAYOUT}, "
            f"or a .tar/.tar.gz of one")
  return None


# ----------------------------------------------------------------- scanning

def scan(source: pathlib.Path) -> Tree:
  """The split/class/image tree of a folder or tar archive, checked but not decoded."""
  problem = source_problem(source)
  if problem:
    raise DataError(f"image folder: {problem}.")
  files, dirs = _list_folder(source) if source.is_dir() else _list_archive(source)
  files, dirs = _strip_wrapper(files, dirs)
  split_folders = {}
  for split, names in SPLIT_FOLDERS.items():
    present = [n for n in names if any(p[0] == n for p in (*files, *dirs))]
    if not present:
      raise DataError(
          f"image folder: {source} has no {' or '.join(f'{n}/' for n in names)} folder. "
          f"Lay it out as {_LAYOUT}.")
    split_folders[split] = present[0]
  splits = {}
  for split, top in split_folders.items():
    classes: dict[str, list[Entry]] = {p[1]: [] for p in dirs if p[0] == top and len(p) == 2}
    for parts in sorted(p for p in files if p[0] == top):
      where = _where(source, parts)
      if len(parts) != 3:
        raise DataError(f"image folder: {where} is not at <split>/<class>/<image>. "
                        f"Lay the source out as {_LAYOUT}.")
      if not parts[2].lower().endswith(IMAGE_SUFFIXES):
        raise DataError(f"image folder: {where} is not a PNG or JPEG image (by its name). "
                        f"Remove it or move it out of the class folders.")
      classes.setdefault(parts[1], []).append(Entry(where, files[parts]))
    splits[split] = dict(sorted(classes.items()))
  _check_classes(source, splits, split_folders)
  return Tree(source, splits, split_folders)


def _where(source: pathlib.Path, parts) -> str:
  return str(source.joinpath(*parts)) if source.is_dir() else f"{source}:{'/'.join(parts)}"


def _skipped(parts) -> bool:
  return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _list_folder(root: pathlib.Path):
  files, dirs = {}, set()
  for folder, subdirs, names in os.walk(root):
    rel = pathlib.Path(folder).relative_to(root).parts
    subdirs.sort()
    dirs.update((*rel, d) for d in subdirs if not _skipped((*rel, d)))
    for name in names:
      parts = (*rel, name)
      if not _skipped(parts):
        files[parts] = pathlib.Path(folder, name).read_bytes
  return files, dirs


def _list_archive(path: pathlib.Path):
  # A gzipped tar can only be read front to back, so every file is read now (an
  # image dataset of this kind fits in memory; its decoded arrays are larger).
  files, dirs = {}, set()
  try:
    with tarfile.open(path) as archive:
      for member in archive:
        parts = tuple(p for p in member.name.split("/") if p not in ("", "."))
        if not parts or _skipped(parts):
          continue
        if member.isdir():
          dirs.add(parts)
        elif member.isfile():
          content = archive.extractfile(member).read()
          files[parts] = lambda content=content: content
          dirs.update(parts[:i] for i in range(1, len(parts)))
  except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
    raise DataError(f"image folder: {path} is not a readable tar archive ({e}); it is "
                    f"truncated or corrupt. Re-create or re-download it.") from e
  return files, dirs


def _strip_wrapper(files, dirs):
  """Drop a single top folder around the split folders (`cifar10/train/...`)."""
  split_names = {n for names in SPLIT_FOLDERS.values() for n in names}
  tops = {p[0] for p in (*files, *dirs)}
  if len(tops) == 1 and not tops & split_names:
    files = {p[1:]: read for p, read in files.items() if len(p) > 1}
    dirs = {p[1:] for p in dirs if len(p) > 1}
  return files, dirs


def _check_classes(source, splits, split_folders) -> None:
  train, test = (set(splits[s]) for s in ("train", "test"))
  if train != test:
    raise DataError(
        f"image folder: {source}: the class folders of {split_folders['train']}/ and "
        f"{split_folders['test']}/ differ (only in {split_folders['train']}/: "
        f"{sorted(train - test) or 'none'}; only in {split_folders['test']}/: "
        f"{sorted(test - train) or 'none'}). Give both splits the same class folders.")
  if not train:
    raise DataError(f"image folder: {source} has no class folders. Lay it out as {_LAYOUT}.")
  for split, classes in splits.items():
    for name, entries in classes.items():
      if not entries:
        raise DataError(f"image folder: class folder {_where(source, (split_folders[split], name))} "
                        f"has no images. Add images or remove the folder from every split.")


# ----------------------------------------------------------------- decoding

def decode(entries: list[Entry], like: tuple[tuple[int, ...], str] | None = None) -> np.ndarray:
  """uint8 (N, H, W, C) from PNG/JPEG entries; all must share one size and channel count.

  Grayscale stays 1 channel, RGB 3; palette images become RGB. `like`, when
  given, is `(shape, where)` of an image every one must match (else the first).
  """
  from PIL import Image  # Pillow: imported only when something is decoded

  out = None
  shape, first = like or (None, None)
  for i, entry in enumerate(entries):
    try:
      with Image.open(io.BytesIO(entry.read())) as image:
        if image.format not in ("PNG", "JPEG"):
          raise DataError(f"image folder: {entry.where} is a {image.format} file, not PNG or "
                          f"JPEG. Convert it or remove it.")
        if image.mode == "P":
          image = image.convert("RGB")
        if image.mode not in ("L", "RGB"):
          raise DataError(f"image folder: {entry.where} has mode {image.mode}; only grayscale "
                          f"(L) and RGB are read. Convert it to RGB or grayscale.")
        pixels = np.asarray(image, np.uint8)
    except DataError:
      raise
    except Exception as e:  # Pillow raises several kinds for unreadable files
      raise DataError(f"image folder: {entry.where} is not a readable PNG or JPEG image ({e}). "
                      f"Replace or remove it.") from e
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    if out is None:
      shape, first = (shape, first) if shape else (pixels.shape, entry.where)
      out = np.empty((len(entries), *shape), np.uint8)
    if pixels.shape != out.shape[1:]:
      raise DataError(
          f"image folder: {entry.where} is {_describe(pixels.shape)} but {first} is "
          f"{_describe(out.shape[1:])}. All images must share one size and channel count "
          f"(across splits too); resize or convert them first.")
    out[i] = pixels
  return out


def _describe(shape) -> str:
  return f"{shape[0]}x{shape[1]} with {shape[2]} channel{'s' if shape[2] > 1 else ''}"


# -------------------------------------------------------- prepared folders

def fingerprint(paths: list[pathlib.Path]) -> str:
  """A hash of the sources' content (archives, label files) or listing (folders)."""
  digest = hashlib.sha256(_PREPARED_VERSION.encode())
  for path in paths:
    if path.is_dir():
      # Names, sizes and mtimes: hashing every image of a large folder would cost
      # about as much as decoding it.
      for folder, subdirs, names in sorted(os.walk(path)):
        subdirs.sort()
        for name in sorted(names):
          stat = os.stat(os.path.join(folder, name))
          rel = os.path.relpath(os.path.join(folder, name), path)
          digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    else:
      with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
          digest.update(chunk)
    digest.update(b"\1")
  return digest.hexdigest()[:16]


def read_prepared(folder: pathlib.Path) -> Prepared | None:
  """The prepared dataset in `folder`, or None when it has not been prepared."""
  try:
    meta = json.loads((folder / "info.json").read_text())
  except FileNotFoundError:
    return None
  return Prepared(folder, tuple(meta["class_names"]), tuple(meta["image_shape"]),
                  dict(meta["counts"]), meta["source"])


def write_prepared(folder: pathlib.Path, arrays: dict[str, tuple[np.ndarray, np.ndarray]],
                   class_names, source: str) -> Prepared:
  """Writes `{split: (images, labels)}` and the metadata as one folder, atomically."""
  folder.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
  try:
    for split, (images, labels) in arrays.items():
      np.save(tmp / f"{split}_images.npy", images, allow_pickle=False)
      np.save(tmp / f"{split}_labels.npy", labels.astype(np.int32), allow_pickle=False)
    shape = next(iter(arrays.values()))[0].shape[1:]
    meta = {"class_names": list(class_names), "image_shape": list(shape), "source": source,
            "counts": {split: len(labels) for split, (_, labels) in arrays.items()}}
    (tmp / "info.json").write_text(json.dumps(meta, indent=2) + "\n")
    try:
      os.replace(tmp, folder)
    except OSError:
      # Another process prepared the same source meanwhile: its folder is as good.
      if read_prepared(folder) is None:
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return read_prepared(folder)


def read_split(prepared: Prepared, split: str) -> tuple[np.ndarray, np.ndarray]:
  try:
    images = np.load(prepared.folder / f"{split}_images.npy", allow_pickle=False)
    labels = np.load(prepared.folder / f"{split}_labels.npy", allow_pickle=False)
  except (OSError, ValueError) as e:
    raise DataError(f"image folder: the prepared files in {prepared.folder} are unreadable "
                    f"({e}). Delete that folder; the next load prepares it again.") from e
  return images, labels


# ------------------------------------------------------------- image folders

def prepare(source: pathlib.Path, cache_root: pathlib.Path) -> Prepared:
  """Decodes a folder or archive once into `cache_root`; later calls read it."""
  source = source.expanduser().absolute()
  problem = source_problem(source)
  if problem:
    raise DataError(f"image folder: {problem}.")
  name = source.name.split(".")[0] or "images"
  folder = cache_root / "jaxinv_image_folder" / f"{name}-{fingerprint([source])}"
  prepared = read_prepared(folder)
  if prepared is not None:
    return prepared
  tree = scan(source)
  class_names = tuple(tree.splits["train"])
  arrays, like = {}, None
  for split, classes in tree.splits.items():
    entries = [e for name in class_names for e in classes[name]]
    labels = np.repeat(np.arange(len(class_names)), [len(classes[n]) for n in class_names])
    images = decode(entries, like)
    like = like or (images.shape[1:], entries[0].where)  # the test split must match train's
    arrays[split] = (images, labels)
  return write_prepared(folder, arrays, class_names, f"image folder {source}")
