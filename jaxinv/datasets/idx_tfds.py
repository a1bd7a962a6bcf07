"""MNIST and Fashion-MNIST as TFDS array_record datasets, built without TensorFlow.

TFDS's stock `mnist` builder decodes PNG-encoded images through TensorFlow.
These builders store each image as raw uint8 bytes instead, which TFDS
writes and reads with numpy alone. They are named `jaxinv_mnist` and
`jaxinv_fashion_mnist` and are not put in TFDS's registry, so they can never
clash with, or be mistaken for, the stock datasets.

Source files come from `<data_dir>/<name>/` when present, else from the
official URLs; either way they are md5-verified before a dataset is prepared.
"""

import contextlib
import os
import pathlib
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from jaxinv.datasets import idx_files
from jaxinv.datasets.errors import DataError


class _IdxBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Builds a dataset from the four official IDX files in the manual dir."""

  SOURCE: ClassVar[idx_files.IdxSource]
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Official IDX files, raw uint8 images, original example order."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put the four official gzipped IDX files (train-images-idx3-ubyte.gz, "
      "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
      "t10k-labels-idx1-ubyte.gz) in the manual dir.")

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"{self.SOURCE.name} from the official IDX files.",
        features=tfds.features.FeaturesDict({
            # A BYTES-encoded Tensor needs no TensorFlow (the Image feature's
            # PNG coding does). Raw bytes also prepare about twice as fast as
            # TFDS's default int64-list encoding (3 s vs 7 s for 60k images).
            "image": tfds.features.Tensor(
                shape=(28, 28, 1), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES),
            "label": tfds.features.ClassLabel(names=self.SOURCE.class_names),
        }),
        supervised_keys=("image", "label"),
        homepage=self.SOURCE.homepage,
        # Keep the files' order: example i of a split is record i of its IDX file.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    folder = pathlib.Path(dl_manager.manual_dir)
    # Checked here too, so the builder is safe to use on its own.
    idx_files.verify_folder(self.SOURCE, folder)
    return {split: self._generate_examples(folder, split) for split in idx_files.SPLIT_FILES}

  def _generate_examples(self, folder: pathlib.Path, split: str):
    images, labels = idx_files.read_split(folder, split)
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {"image": image[..., None], "label": int(label)}


class JaxinvMnist(_IdxBuilder, skip_registration=True):
  SOURCE = idx_files.SOURCES["mnist"]


class JaxinvFashionMnist(_IdxBuilder, skip_registration=True):
  SOURCE = idx_files.SOURCES["fashion_mnist"]


BUILDERS = {"mnist": JaxinvMnist, "fashion_mnist": JaxinvFashionMnist}


def load_split(name: str, split: str, *, data_dir: pathlib.Path | None,
               tfds_dir: str | None, download: bool | None) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images (N, 28, 28, 1) and int labels (N,), preparing the dataset if needed.

  `download`: False never downloads; None downloads only when `data_dir` has
  no files for `name`; True takes the files from the official URLs even then.
  A dataset that is already prepared is read as it is, without any download.
  """
  source = idx_files.SOURCES[name]
  builder = BUILDERS[name](data_dir=tfds_dir, file_format=tfds.core.FileFormat.ARRAY_RECORD)
  local = data_dir / name if data_dir is not None else None
  use_local = download is not True and local is not None and idx_files.has_any_file(local)
  if use_local:
    # Verified even when the dataset is already prepared (md5s are cached per
    # file): a data_dir with bad files is a setup error worth reporting at once.
    idx_files.verify_folder(source, local)
  if not builder.is_prepared():
    # Processes sharing a TFDS folder (parallel test workers, several jobs on one
    # machine) would otherwise prepare the same dataset at once and trip over each
    # other's half-written folders: the first prepares, the others wait and read.
    with _preparation_lock(builder):
      if not builder.is_prepared():
        if use_local:
          files = local
        elif download is False:
          raise DataError(
              f"{name}: no local files in {local or '<no data_dir>'} and download=False. "
              f"Set JAXINV_DATA_DIR (or data_dir=) to a folder with a '{name}/' subfolder "
              f"holding {', '.join(idx_files.FILENAMES)}, or allow downloading.")
        else:
          files = _download_dir(builder)
          idx_files.download(source, files)
        _prepare(builder, files)
    # A builder made before another process prepared the dataset has no split info.
    builder = BUILDERS[name](data_dir=tfds_dir, file_format=tfds.core.FileFormat.ARRAY_RECORD)
  return _read(builder, split)


@contextlib.contextmanager
def _preparation_lock(builder: tfds.core.DatasetBuilder):
  """An exclusive lock file beside the builder's folder (POSIX; elsewhere no lock)."""
  try:
    import fcntl
  except ImportError:  # Windows: no advisory locks here; prepare unguarded
    yield
    return
  root = pathlib.Path(os.fspath(builder.data_dir)).parents[1]
  root.mkdir(parents=True, exist_ok=True)
  with open(root / f".{builder.name}.prepare.lock", "w") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


def _download_dir(builder: tfds.core.DatasetBuilder) -> pathlib.Path:
  # builder.data_dir is <tfds root>/<builder name>/<version>; downloads sit
  # beside the prepared datasets, as TFDS's own do.
  root = pathlib.Path(os.fspath(builder.data_dir)).parents[1]
  return root / "downloads" / builder.name


def _prepare(builder: tfds.core.DatasetBuilder, files: pathlib.Path) -> None:
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=os.fspath(files), try_download_gcs=False))


def _read(builder: tfds.core.DatasetBuilder, split: str) -> tuple[np.ndarray, np.ndarray]:
  source = builder.as_data_source(split=split)
  # One batched read: array_record fetches the records in parallel threads,
  # several times faster than indexing them one at a time.
  examples = source.__getitems__(list(range(len(source))))
  images = np.stack([e["image"] for e in examples])
  labels = np.fromiter((e["label"] for e in examples), np.int32, count=len(examples))
  return images, labels
