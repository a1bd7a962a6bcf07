"""Tests for `jaxinv.data`, run against the real files in JAXINV_DATA_DIR.

JAXINV_DATA_DIR defaults to the repository's `../shared/data`. Nothing here
touches the network: downloads go to a local HTTP server, and every other
load passes `download=False`. TFDS datasets are prepared under pytest's tmp
dirs, each dataset once per session.
"""

import dataclasses
import functools
import gzip
import http.server
import importlib.util
import os
import pathlib
import shutil
import struct
import threading
import urllib.request

import numpy as np
import pytest
from PIL import Image

from jaxinv import data
from jaxinv.datasets import idx_files

REPO = pathlib.Path(__file__).resolve().parents[1]

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
CIFAR_TRAIN_FIRST = [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
CIFAR_TEST_FIRST = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
  path = pathlib.Path(os.environ.get("JAXINV_DATA_DIR") or REPO.parent / "shared" / "data")
  if not (path / "mnist").is_dir():
    pytest.skip(f"no real data in {path}; set JAXINV_DATA_DIR")
  return path


@pytest.fixture(autouse=True)
def no_internet(monkeypatch):
  """Fail any download that is not from this machine (the TFDS path has none)."""
  real_urlopen = urllib.request.urlopen

  def local_only(url, *args, **kwargs):
    if not str(url).startswith("http://127.0.0.1:"):
      raise AssertionError(f"test tried to download {url}")
    return real_urlopen(url, *args, **kwargs)

  monkeypatch.setattr(urllib.request, "urlopen", local_only)
  monkeypatch.delenv("JAXINV_DATA_DIR", raising=False)
  monkeypatch.delenv("JAXINV_TFDS_DIR", raising=False)


@pytest.fixture
def mnist_copy(data_dir, tmp_path) -> pathlib.Path:
  """A writable copy of the MNIST files, as `<data_dir>/mnist/` under tmp_path."""
  shutil.copytree(data_dir / "mnist", tmp_path / "data" / "mnist")
  return tmp_path / "data"


# ------------------------------------------------------------------- info


def test_info_for_every_dataset():
  # (folder:PATH datasets are tested in test_image_folder.py)
  for name in data.DATASETS:
    meta = data.info(name)
    assert meta.name == name
    assert meta.num_classes == len(meta.class_names) == 10
  assert data.info("mnist").image_shape == (28, 28, 1)
  assert data.info("cifar10").image_shape == (32, 32, 3)
  assert data.info("svhn_cropped").class_names == tuple("0123456789")
  assert data.info("fashion_mnist").class_names[0] == "T-shirt/top"
  assert data.info("fashion_mnist").class_names[9] == "Ankle boot"


def test_unknown_dataset_names_the_known_ones():
  with pytest.raises(ValueError, match="'kmnist'.*digits.*mnist.*cifar10"):
    data.info("kmnist")
  with pytest.raises(ValueError, match="'kmnist'"):
    data.load("kmnist", "train")


@pytest.mark.parametrize("name", ["digits", "mnist"])
def test_unknown_split_names_the_allowed_ones(name, tmp_path):
  with pytest.raises(ValueError, match="'validation'.*train.*test"):
    data.load(name, "validation", data_dir=tmp_path, tfds_dir=tmp_path, download=False)


# ----------------------------------------------------------------- digits


def test_digits_shapes_range_and_labels():
  train_x, train_y = data.load("digits", "train")
  test_x, test_y = data.load("digits", "test")
  assert train_x.shape == (1437, 28, 28, 1) and test_x.shape == (360, 28, 28, 1)
  assert train_x.dtype == test_x.dtype == np.float32
  assert train_y.dtype == test_y.dtype == np.int32
  for x, y in ((train_x, train_y), (test_x, test_y)):
    assert x.min() == -1.0 and x.max() == 1.0
    assert np.array_equal(np.unique(y), np.arange(10))  # stratified: every class in both
  # MNIST-like frame: the digit sits in the central 20x20, the border is background.
  border = np.ones((28, 28), bool)
  border[4:24, 4:24] = False
  assert np.all(train_x[:, border] == -1.0)


def test_digits_split_is_deterministic():
  first_x, first_y = data.load("digits", "test")
  again_x, again_y = data.load("digits", "test")
  np.testing.assert_array_equal(first_x, again_x)
  np.testing.assert_array_equal(first_y, again_y)


# ------------------------------------------------------ MNIST through TFDS


@pytest.mark.parametrize("name, split, counts, first_labels", [
    ("mnist", "train", MNIST_TRAIN_COUNTS, [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]),
    ("mnist", "test", MNIST_TEST_COUNTS, [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]),
    ("fashion_mnist", "train", [6000] * 10, [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]),
    ("fashion_mnist", "test", [1000] * 10, [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]),
])
def test_idx_dataset_via_tfds(name, split, counts, first_labels, data_dir, tfds_dir):
  images, labels = data.load(name, split, data_dir=data_dir, tfds_dir=tfds_dir, download=False)
  assert images.shape == (sum(counts), 28, 28, 1) and images.dtype == np.float32
  assert labels.dtype == np.int32
  assert images.min() == -1.0 and images.max() == 1.0
  assert np.bincount(labels, minlength=10).tolist() == counts
  assert labels[:10].tolist() == first_labels
  # Lossless and in file order: the TFDS records equal the raw IDX pixels.
  raw_images, raw_labels = idx_files.read_split(data_dir / name, split)
  np.testing.assert_array_equal(np.rint((images[..., 0] + 1) * 127.5), raw_images)
  np.testing.assert_array_equal(labels, raw_labels)


def test_prepared_dataset_is_reused_without_source_files(data_dir, tfds_dir, tmp_path):
  data.load("mnist", "test", data_dir=data_dir, tfds_dir=tfds_dir, download=False)
  # No local files and no download allowed: only the prepared dataset can serve this.
  images, _ = data.load("mnist", "test", data_dir=tmp_path, tfds_dir=tfds_dir, download=False)
  assert len(images) == 10_000


def test_env_vars_are_the_defaults(data_dir, tfds_dir, monkeypatch):
  monkeypatch.setenv("JAXINV_DATA_DIR", str(data_dir))
  monkeypatch.setenv("JAXINV_TFDS_DIR", str(tfds_dir))
  _, labels = data.load("mnist", "test", download=False)
  assert len(labels) == 10_000


# --------------------------------------------------------------- checksums


def test_truncated_file_is_rejected_before_preparing(mnist_copy, tmp_path):
  path = mnist_copy / "mnist" / "train-labels-idx1-ubyte.gz"
  path.write_bytes(path.read_bytes()[:1000])
  tfds_dir = tmp_path / "fresh_tfds"
  with pytest.raises(data.DataError, match=r"train-labels-idx1-ubyte\.gz.*size 1,000 bytes "
                                           r"\(expected 28,881\).*JAXINV_DATA_DIR"):
    data.load("mnist", "test", data_dir=mnist_copy, tfds_dir=tfds_dir, download=False)
  assert not (tfds_dir / "jaxinv_mnist").exists()  # nothing was prepared


def test_flipped_byte_is_rejected_even_when_prepared(mnist_copy, tfds_dir, data_dir):
  data.load("mnist", "test", data_dir=data_dir, tfds_dir=tfds_dir, download=False)
  path = mnist_copy / "mnist" / "t10k-images-idx3-ubyte.gz"
  content = bytearray(path.read_bytes())
  content[5000] ^= 0xFF
  path.write_bytes(bytes(content))
  with pytest.raises(data.DataError, match=r"t10k-images-idx3-ubyte\.gz.*md5 [0-9a-f]{32} "
                                           r"\(expected 9fb629c4189551a2d022fa330f9573f3\)"):
    data.load("mnist", "test", data_dir=mnist_copy, tfds_dir=tfds_dir, download=False)


def test_missing_file_is_named(mnist_copy, tmp_path):
  (mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
  with pytest.raises(data.DataError, match=r"t10k-labels-idx1-ubyte\.gz is missing"):
    data.load("mnist", "train", data_dir=mnist_copy, tfds_dir=tmp_path / "t", download=False)


def test_no_files_and_no_download_is_a_clear_error(tmp_path):
  with pytest.raises(data.DataError, match="no local files.*download=False.*JAXINV_DATA_DIR"):
    data.load("fashion_mnist", "test", data_dir=tmp_path, tfds_dir=tmp_path, download=False)
  with pytest.raises(data.DataError, match="download=False"):
    data.load("mnist", "test", tfds_dir=tmp_path, download=False)  # no data_dir at all


def test_md5_is_cached_per_file(mnist_copy):
  path = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
  assert idx_files.file_md5(path) == "ec29112dd5afa0611ce80d1b7f02629c"
  path.write_bytes(b"changed")  # new size and mtime: hashed again, not served stale
  assert idx_files.file_md5(path) != "ec29112dd5afa0611ce80d1b7f02629c"


# ---------------------------------------------------------------- download


@pytest.fixture
def file_server(data_dir):
  """Serves `data_dir` over HTTP on 127.0.0.1; yields the base URL."""

  class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
      pass

  handler = functools.partial(QuietHandler, directory=str(data_dir))
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_port}/"
  server.shutdown()
  server.server_close()


def test_download_then_prepare(file_server, tmp_path, monkeypatch):
  source = dataclasses.replace(idx_files.SOURCES["mnist"], url=file_server + "mnist/")
  monkeypatch.setitem(idx_files.SOURCES, "mnist", source)
  images, labels = data.load("mnist", "test", data_dir=tmp_path / "empty", tfds_dir=tmp_path)
  assert images.shape == (10_000, 28, 28, 1)
  assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS
  for filename in idx_files.FILENAMES:  # downloaded beside the prepared dataset
    assert (tmp_path / "downloads" / "jaxinv_mnist" / filename).is_file()


def test_failed_download_is_a_clear_error(file_server, tmp_path, monkeypatch):
  source = dataclasses.replace(idx_files.SOURCES["fashion_mnist"], url=file_server + "nowhere/")
  monkeypatch.setitem(idx_files.SOURCES, "fashion_mnist", source)
  with pytest.raises(data.DataError, match="could not download .*nowhere/.*JAXINV_DATA_DIR"):
    data.load("fashion_mnist", "test", data_dir=tmp_path, tfds_dir=tmp_path)
  assert not list((tmp_path / "downloads" / "jaxinv_fashion_mnist").iterdir())


# -------------------------------------------------------------- IDX parser


def _write_idx(path, magic, dims, payload):
  with gzip.open(path, "wb") as f:
    f.write(struct.pack(f">I{len(dims)}I", magic, *dims) + bytes(payload))


def test_idx_header_is_validated(tmp_path):
  good = tmp_path / "good.gz"
  _write_idx(good, 0x803, (2, 28, 28), [7] * (2 * 784))
  assert idx_files.read_idx(good, 0x803).shape == (2, 28, 28)
  with pytest.raises(data.DataError, match="expected IDX magic 0x00000801"):
    idx_files.read_idx(good, 0x801)
  short = tmp_path / "short.gz"
  _write_idx(short, 0x803, (3, 28, 28), [0] * (2 * 784))
  with pytest.raises(data.DataError, match=r"short\.gz.*\(3, 28, 28\)"):
    idx_files.read_idx(short, 0x803)
  not_gzip = tmp_path / "plain.gz"
  not_gzip.write_bytes(b"\x00\x00\x08\x03")
  with pytest.raises(data.DataError, match="not a readable gzip"):
    idx_files.read_idx(not_gzip, 0x803)


# ----------------------------------------------------------------- CIFAR-10


def test_cifar10_from_local_binary_batches(data_dir, tmp_path):
  # Only the binary batches: a cifar10_jpeg/ beside them would be read first.
  (tmp_path / "cifar10").symlink_to((data_dir / "cifar10").resolve())
  train_x, train_y = data.load("cifar10", "train", data_dir=tmp_path, download=False)
  test_x, test_y = data.load("cifar10", "test", data_dir=tmp_path, download=False)
  assert train_x.shape == (200, 32, 32, 3) and test_x.shape == (20, 32, 32, 3)
  assert train_x.dtype == np.float32 and train_y.dtype == np.int32
  assert -1.0 <= train_x.min() and train_x.max() <= 1.0
  assert train_y[:10].tolist() == CIFAR_TRAIN_FIRST
  assert test_y[:10].tolist() == CIFAR_TEST_FIRST
  # Channel order and layout: the binary records decode to the reference PNGs.
  png = np.asarray(Image.open(data_dir / "cifar10" / "test_first20_png" / "cifar10_00_3.png"))
  np.testing.assert_array_equal(np.rint((test_x[0] + 1) * 127.5), png)


def test_cifar10_bad_file_size(tmp_path):
  (tmp_path / "cifar10").mkdir()
  (tmp_path / "cifar10" / "test_batch.bin").write_bytes(bytes(3073 * 2 + 5))
  with pytest.raises(data.DataError, match=r"test_batch\.bin.*6,151 bytes.*3073"):
    data.load("cifar10", "test", data_dir=tmp_path, download=False)


def test_cifar10_missing_split_file(tmp_path):
  (tmp_path / "cifar10").mkdir()
  (tmp_path / "cifar10" / "test_batch.bin").write_bytes(bytes(3073))
  with pytest.raises(data.DataError, match="no train files"):
    data.load("cifar10", "train", data_dir=tmp_path, download=False)


@pytest.mark.skipif(HAS_TENSORFLOW, reason="checks the message shown without TensorFlow")
@pytest.mark.parametrize("name", ["cifar10", "svhn_cropped"])
def test_stock_tfds_without_tensorflow_says_what_to_install(name, tmp_path):
  with pytest.raises(data.DataError, match=r"pip install 'jaxinv\[tensorflow\]'"):
    data.load(name, "test", data_dir=tmp_path, tfds_dir=tmp_path, download=False)


# ------------------------------------------------------------ resize_images


def test_resize_gray_to_rgb_and_back():
  gray, _ = data.load("digits", "test")
  rgb = data.resize_images(gray, (32, 32, 3))
  assert rgb.shape == (360, 32, 32, 3) and rgb.dtype == np.float32
  np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])  # gray repeated
  assert -1.0 <= rgb.min() and rgb.max() <= 1.0
  back = data.resize_images(rgb, (28, 28, 1))
  assert back.shape == (360, 28, 28, 1)
  assert np.abs(back - gray).mean() < 0.05  # slightly blurred, otherwise unchanged


def test_resize_rgb_to_gray_is_the_channel_mean():
  rng = np.random.default_rng(0)
  rgb = rng.uniform(-1, 1, (5, 32, 32, 3)).astype(np.float32)
  gray = data.resize_images(rgb, (32, 32, 1), batch_size=2)  # several batches
  np.testing.assert_allclose(gray[..., 0], rgb.mean(-1), atol=1e-6)
  constant = data.resize_images(np.full((2, 32, 32, 3), 0.25, np.float32), (28, 28, 1))
  np.testing.assert_allclose(constant, 0.25, atol=1e-6)


def test_resize_rejects_other_channel_counts():
  with pytest.raises(ValueError, match="2 channels"):
    data.resize_images(np.zeros((1, 8, 8, 2), np.float32), (8, 8, 3))


def test_two_processes_preparing_one_dataset_at_once_both_read_it(data_dir, tmp_path):
  """Parallel test workers or jobs sharing a TFDS folder: one prepares, the other
  waits for the lock and reads the prepared dataset."""
  import subprocess
  import sys
  code = ("import sys; from jaxinv import data; "
          "x, y = data.load('fashion_mnist', 'test', data_dir=sys.argv[1], tfds_dir=sys.argv[2], "
          "download=False); print(len(x), int(y.sum()))")
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  procs = [subprocess.Popen([sys.executable, "-c", code, str(data_dir), str(tmp_path / "tfds")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
           for _ in range(2)]
  outputs = [proc.communicate(timeout=600) for proc in procs]
  for proc, (out, err) in zip(procs, outputs):
    assert proc.returncode == 0, err[-2000:]
    # TFDS prints progress first; the script's own line is the last one.
    assert out.strip().splitlines()[-1].split() == ["10000", str(45_000)], out  # 1000 of each label
  assert list((tmp_path / "tfds").glob(".*.prepare.lock"))


# ------------------------------------------------------------ SVHN .mat files


def _write_svhn(folder, n=12, seed=0):
  import scipy.io

  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
  y = (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)  # 1–10, 10 = digit 0
  folder.mkdir(parents=True, exist_ok=True)
  for split in ("train", "test"):
    scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
  return x, y


def test_svhn_from_official_mat_files(tmp_path):
  x, y = _write_svhn(tmp_path / "svhn_cropped")
  images, labels = data.load("svhn_cropped", "test", data_dir=tmp_path, download=False)
  assert images.shape == (12, 32, 32, 3)
  np.testing.assert_array_equal(labels, y[:, 0] % 10)
  assert labels[9] == 0  # label 10 is the digit 0
  np.testing.assert_allclose(images[3], x[..., 3] / 127.5 - 1.0, atol=1e-6)
  assert data.source("svhn_cropped", data_dir=tmp_path) == "SVHN (official .mat files)"


@pytest.mark.parametrize("problem, match", [
    ("missing", "test_32x32.mat is missing"),
    ("not_mat", "not a MATLAB .mat file"),
    ("counts", "12 images but 5 labels"),
])
def test_svhn_bad_files_name_the_file(tmp_path, problem, match):
  import scipy.io

  folder = tmp_path / "svhn_cropped"
  x, y = _write_svhn(folder)
  if problem == "missing":
    (folder / "test_32x32.mat").unlink()
  elif problem == "not_mat":
    (folder / "test_32x32.mat").write_bytes(b"<html>not found</html>")
  else:
    scipy.io.savemat(folder / "test_32x32.mat", {"X": x, "y": y[:5]})
  with pytest.raises(data.DataError, match=match):
    data.load("svhn_cropped", "test", data_dir=tmp_path, download=False)
