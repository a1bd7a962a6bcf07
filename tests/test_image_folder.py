"""Image folders (`folder:PATH`) and the CIFAR-10 JPEG copy (`jaxinv.datasets.image_folder`).

The CIFAR-10 tests read the real archive in JAXINV_DATA_DIR/cifar10_jpeg/ and
compare it with the lossless images in JAXINV_DATA_DIR/cifar10/. Decoding all
60,000 JPEGs takes about 9 s on one core, so it happens once per module, into
a shared tmp dir. The folder tests write tiny trees of their own. No network.
"""

import os
import pathlib
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from jaxinv import config as config_lib
from jaxinv import data
from jaxinv.datasets import cifar_bin, image_folder

REPO = pathlib.Path(__file__).resolve().parents[1]
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck")


@pytest.fixture(autouse=True)
def no_env_dirs(monkeypatch):
  # Every load below names its folders, so none can read or write the user's.
  monkeypatch.delenv("JAXINV_DATA_DIR", raising=False)
  monkeypatch.delenv("JAXINV_TFDS_DIR", raising=False)


@pytest.fixture(scope="module")
def jpeg_data_dir() -> pathlib.Path:
  path = pathlib.Path(os.environ["JAXINV_DATA_DIR"]).resolve()
  if not (path / "cifar10_jpeg" / "cifar10-jpeg.tar.gz").is_file():
    pytest.skip(f"no CIFAR-10 JPEG copy in {path}/cifar10_jpeg")
  return path


@pytest.fixture(scope="module")
def cifar_prepared(jpeg_data_dir, tmp_path_factory) -> pathlib.Path:
  """A prepared dir holding the decoded JPEG copy (decoded once for the module)."""
  root = tmp_path_factory.mktemp("prepared")
  data.load("cifar10", "test", data_dir=jpeg_data_dir, tfds_dir=root, download=False)
  return root


def load_cifar(split, jpeg_data_dir, root):
  return data.load("cifar10", split, data_dir=jpeg_data_dir, tfds_dir=root, download=False)


# ------------------------------------------------------ CIFAR-10 JPEG copy


@pytest.mark.parametrize("split,count", [("train", 50_000), ("test", 10_000)])
def test_cifar10_jpeg_counts(split, count, jpeg_data_dir, cifar_prepared):
  images, labels = load_cifar(split, jpeg_data_dir, cifar_prepared)
  assert images.shape == (count, 32, 32, 3) and images.dtype == np.float32
  assert labels.dtype == np.int32
  assert np.bincount(labels).tolist() == [count // 10] * 10
  assert -1.0 <= images.min() and images.max() <= 1.0


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_jpeg_is_in_the_official_order(split, jpeg_data_dir, cifar_prepared):
  """The first records match the lossless subset: same labels, pixels within JPEG error."""
  images, labels = load_cifar(split, jpeg_data_dir, cifar_prepared)
  exact_images, exact_labels = cifar_bin.load_split(jpeg_data_dir / "cifar10", split)
  n = len(exact_labels)  # 200 train, 20 test
  assert labels[:n].tolist() == exact_labels.tolist()
  pixels = np.rint((images[:n] + 1) * 127.5)
  error = pixels - exact_images.astype(np.float64)
  # Measured on these 220 images: mean |error| 5.9 (train) / 6.2 (test) grey levels,
  # per image 2.9-9.7; PSNR 29.9 / 29.6 dB overall, at least 25.6 dB per image.
  # The next image of the same class is never within 26 (the data's README).
  per_image_mae = np.abs(error).mean(axis=(1, 2, 3))
  per_image_psnr = 10 * np.log10(255**2 / (error**2).mean(axis=(1, 2, 3)))
  assert np.abs(error).mean() < 7.0
  assert per_image_mae.max() < 12.0
  assert per_image_psnr.min() > 25.0
  assert 10 * np.log10(255**2 / (error**2).mean()) > 29.0


def test_cifar10_jpeg_is_recorded_as_such(jpeg_data_dir, tmp_path):
  assert data.source("cifar10", data_dir=jpeg_data_dir) == "CIFAR-10 (JPEG copy)"
  # Without the JPEG copy the binary batches are used, and said to be.
  (tmp_path / "cifar10").symlink_to(jpeg_data_dir / "cifar10")
  assert data.source("cifar10", data_dir=tmp_path).startswith("CIFAR-10 (binary batches")
  assert data.source("cifar10", data_dir=tmp_path / "empty") == "CIFAR-10 (TFDS)"


def test_cifar10_jpeg_is_decoded_once(jpeg_data_dir, cifar_prepared, monkeypatch):
  def no_decoding(*args, **kwargs):
    raise AssertionError("decoded again instead of reading the prepared arrays")

  monkeypatch.setattr(image_folder, "decode", no_decoding)
  images, _ = load_cifar("train", jpeg_data_dir, cifar_prepared)
  assert len(images) == 50_000
  prepared = list((cifar_prepared / "jaxinv_cifar10_jpeg").iterdir())
  assert len(prepared) == 1
  assert sorted(p.name for p in prepared[0].iterdir()) == [
      "info.json", "test_images.npy", "test_labels.npy", "train_images.npy", "train_labels.npy"]


@pytest.fixture
def jpeg_copy(jpeg_data_dir, tmp_path) -> pathlib.Path:
  """A data dir whose cifar10_jpeg/ links the real archive and copies its label files."""
  folder = tmp_path / "data" / "cifar10_jpeg"
  folder.mkdir(parents=True)
  (folder / "cifar10-jpeg.tar.gz").symlink_to(jpeg_data_dir / "cifar10_jpeg" / "cifar10-jpeg.tar.gz")
  for name in ("train_labels.txt", "test_labels.txt"):
    shutil.copy(jpeg_data_dir / "cifar10_jpeg" / name, folder / name)
  return tmp_path / "data"


def test_cifar10_label_file_of_wrong_length(jpeg_copy, tmp_path):
  labels = jpeg_copy / "cifar10_jpeg" / "test_labels.txt"
  labels.write_text("\n".join(labels.read_text().split()[:9_999]) + "\n")
  with pytest.raises(data.DataError, match=r"test_labels\.txt has 9,999 labels.*10,000 images"):
    load_cifar("train", jpeg_copy, tmp_path / "prepared")
  assert_nothing_prepared(tmp_path / "prepared")


def test_cifar10_missing_archive(jpeg_copy, tmp_path):
  (jpeg_copy / "cifar10_jpeg" / "cifar10-jpeg.tar.gz").unlink()
  with pytest.raises(data.DataError, match=r"cifar10-jpeg\.tar\.gz is missing.*remove the folder"):
    load_cifar("test", jpeg_copy, tmp_path / "prepared")


def test_cifar10_missing_label_file(jpeg_copy, tmp_path):
  (jpeg_copy / "cifar10_jpeg" / "train_labels.txt").unlink()
  with pytest.raises(data.DataError, match=r"train_labels\.txt is missing"):
    load_cifar("train", jpeg_copy, tmp_path / "prepared")


# ----------------------------------------------------------- image folders


def write_tree(root, sizes=None, classes=("cat", "dog"), per_class=3, mode="RGB",
               suffix=".png", splits=("train", "test")):
  """root/<split>/<class>/<i><suffix>: image i of class k is filled with 40*k + i."""
  for split in splits:
    for k, name in enumerate(classes):
      folder = root / split / name
      folder.mkdir(parents=True)
      for i in range(per_class):
        size = (sizes or {}).get((split, name, i), (8, 6))
        value = 40 * k + i
        Image.new(mode, size, value if mode == "L" else (value, value, value)).save(
            folder / f"{i}{suffix}")
  return root


def assert_nothing_prepared(root):
  """Neither a prepared folder nor a leftover temporary one."""
  found = [p for p in root.rglob("*") if p.is_dir() and p.parent.name.startswith("jaxinv_")]
  assert not found, f"half-prepared data left behind: {found}"


def test_png_folder_loads_with_sorted_class_names(tmp_path):
  # Created out of order: labels follow the sorted folder names.
  root = write_tree(tmp_path / "pets", classes=("zebra", "ant", "moth"))
  name = f"folder:{root}"
  meta = data.info(name, tfds_dir=tmp_path / "prepared")
  assert meta.class_names == ("ant", "moth", "zebra")
  assert meta.num_classes == 3 and meta.image_shape == (6, 8, 3)
  images, labels = data.load(name, "train", tfds_dir=tmp_path / "prepared")
  assert images.shape == (9, 6, 8, 3)
  assert labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
  # "ant" was written second (k=1): pixel value 40 + i, exactly (PNG is lossless).
  np.testing.assert_array_equal(np.rint((images[:3, 0, 0, 0] + 1) * 127.5), [40, 41, 42])
  assert data.source(name) == f"image folder {root}"


def test_grayscale_jpeg_folder_keeps_one_channel(tmp_path):
  root = write_tree(tmp_path / "gray", mode="L", suffix=".jpg")
  images, labels = data.load(f"folder:{root}", "test", tfds_dir=tmp_path / "prepared")
  assert images.shape == (6, 6, 8, 1)
  # JPEG of a flat image is near exact.
  np.testing.assert_allclose(np.rint((images[3:, 0, 0, 0] + 1) * 127.5), [40, 41, 42], atol=2)


def test_tar_gz_with_a_wrapping_folder_and_val_split(tmp_path):
  root = write_tree(tmp_path / "src" / "kaggle", splits=("train", "val"))
  (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0junk")  # hidden: skipped
  (root / "README.txt").write_text("not in a class folder: ignored")
  archive = tmp_path / "kaggle.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(root, arcname="kaggle")
  test_x, test_y = data.load(f"folder:{archive}", "test", tfds_dir=tmp_path / "prepared")
  assert test_x.shape == (6, 6, 8, 3) and test_y.tolist() == [0, 0, 0, 1, 1, 1]
  assert data.info(f"folder:{archive}", tfds_dir=tmp_path / "prepared").class_names == ("cat", "dog")


def test_folder_is_decoded_once_and_redone_when_it_changes(tmp_path, monkeypatch):
  root = write_tree(tmp_path / "pets")
  prepared = tmp_path / "prepared"
  data.load(f"folder:{root}", "train", tfds_dir=prepared)
  real_decode = image_folder.decode
  calls = []
  monkeypatch.setattr(image_folder, "decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
  data.info(f"folder:{root}", tfds_dir=prepared)
  data.load(f"folder:{root}", "test", tfds_dir=prepared)
  assert not calls
  Image.new("RGB", (8, 6)).save(root / "train" / "cat" / "9.png")  # a new image: new data
  images, _ = data.load(f"folder:{root}", "train", tfds_dir=prepared)
  assert len(images) == 7 and calls


def test_env_tfds_dir_is_where_folders_are_prepared(tmp_path, monkeypatch):
  root = write_tree(tmp_path / "pets")
  monkeypatch.setenv("JAXINV_TFDS_DIR", str(tmp_path / "env_prepared"))
  data.load(f"folder:{root}", "train")
  assert (tmp_path / "env_prepared" / "jaxinv_image_folder").is_dir()


# ------------------------------------------------------------- bad input


def test_missing_folder(tmp_path):
  with pytest.raises(data.DataError, match=r"nowhere does not exist.*train/<class>/<image>"):
    data.load(f"folder:{tmp_path / 'nowhere'}", "train", tfds_dir=tmp_path)


def test_file_that_is_not_an_archive(tmp_path):
  path = tmp_path / "images.tar.gz"
  path.write_bytes(b"these are not the images you are looking for" * 20)
  with pytest.raises(data.DataError, match=r"images\.tar\.gz is a file but not a tar archive"):
    data.load(f"folder:{path}", "train", tfds_dir=tmp_path / "prepared")


def test_truncated_archive(tmp_path):
  root = write_tree(tmp_path / "src", per_class=40)
  archive = tmp_path / "cut.tar"
  with tarfile.open(archive, "w") as tar:
    tar.add(root / "train", arcname="train")
    tar.add(root / "test", arcname="test")
  archive.write_bytes(archive.read_bytes()[:archive.stat().st_size // 2 + 100])
  with pytest.raises(data.DataError, match=r"cut\.tar.*(not a readable tar|not a readable PNG)"):
    data.load(f"folder:{archive}", "train", tfds_dir=tmp_path / "prepared")
  assert_nothing_prepared(tmp_path / "prepared")


def test_missing_test_split(tmp_path):
  root = write_tree(tmp_path / "pets", splits=("train",))
  with pytest.raises(data.DataError, match=r"no test/ or val/ or valid/ or validation/ folder"):
    data.info(f"folder:{root}", tfds_dir=tmp_path / "prepared")


def test_non_image_file_among_images(tmp_path):
  root = write_tree(tmp_path / "pets")
  (root / "test" / "dog" / "labels.csv").write_text("a,b\n")
  with pytest.raises(data.DataError, match=r"test/dog/labels\.csv is not a PNG or JPEG"):
    data.load(f"folder:{root}", "train", tfds_dir=tmp_path / "prepared")
  assert_nothing_prepared(tmp_path / "prepared")


def test_file_named_as_image_that_is_not_one(tmp_path):
  root = write_tree(tmp_path / "pets")
  (root / "train" / "dog" / "5.jpg").write_bytes(b"GIF89a not a jpeg")
  with pytest.raises(data.DataError, match=r"train/dog/5\.jpg is not a readable PNG or JPEG"):
    data.load(f"folder:{root}", "train", tfds_dir=tmp_path / "prepared")


def test_images_of_mixed_sizes(tmp_path):
  root = write_tree(tmp_path / "pets", sizes={("train", "dog", 1): (9, 6)})
  with pytest.raises(data.DataError,
                     match=r"train/dog/1\.png is 6x9 with 3 channels but .*train/cat/0\.png is "
                           r"6x8 with 3 channels.*resize"):
    data.load(f"folder:{root}", "train", tfds_dir=tmp_path / "prepared")
  assert_nothing_prepared(tmp_path / "prepared")


def test_test_split_of_another_size(tmp_path):
  root = write_tree(tmp_path / "pets", sizes={("test", "cat", 0): (16, 16)})
  with pytest.raises(data.DataError, match=r"test/cat/0\.png is 16x16.*train/cat/0\.png is 6x8"):
    data.load(f"folder:{root}", "test", tfds_dir=tmp_path / "prepared")


def test_images_of_mixed_channel_counts(tmp_path):
  root = write_tree(tmp_path / "pets")
  Image.new("L", (8, 6), 7).save(root / "train" / "dog" / "2.png")
  with pytest.raises(data.DataError, match=r"train/dog/2\.png is 6x8 with 1 channel but"):
    data.load(f"folder:{root}", "train", tfds_dir=tmp_path / "prepared")


def test_unsupported_image_mode(tmp_path):
  root = write_tree(tmp_path / "pets")
  Image.new("RGBA", (8, 6)).save(root / "train" / "dog" / "2.png")
  with pytest.raises(data.DataError, match=r"train/dog/2\.png has mode RGBA.*Convert"):
    data.load(f"folder:{root}", "train", tfds_dir=tmp_path / "prepared")


def test_class_folders_differ_between_splits(tmp_path):
  root = write_tree(tmp_path / "pets")
  shutil.rmtree(root / "test" / "dog")
  write_tree(tmp_path / "other", classes=("bird",), splits=("test",))
  shutil.move(tmp_path / "other" / "test" / "bird", root / "test" / "bird")
  with pytest.raises(data.DataError,
                     match=r"only in train/: \['dog'\]; only in test/: \['bird'\]"):
    data.load(f"folder:{root}", "train", tfds_dir=tmp_path / "prepared")


def test_empty_class_folder(tmp_path):
  root = write_tree(tmp_path / "pets")
  (root / "train" / "emu").mkdir()
  (root / "test" / "emu").mkdir()
  (root / "test" / "emu" / ".keep").write_text("")  # hidden files do not count as images
  with pytest.raises(data.DataError, match=r"train/emu has no images"):
    data.load(f"folder:{root}", "train", tfds_dir=tmp_path / "prepared")


def test_empty_class_folder_in_an_archive(tmp_path):
  root = write_tree(tmp_path / "src")
  (root / "test" / "emu").mkdir()
  (root / "train" / "emu").mkdir()
  archive = tmp_path / "pets.tar"
  with tarfile.open(archive, "w") as tar:
    tar.add(root, arcname=".")
  with pytest.raises(data.DataError, match=r"pets\.tar:train/emu has no images"):
    data.load(f"folder:{archive}", "train", tfds_dir=tmp_path / "prepared")


# ----------------------------------------------------------------- config


def test_folder_dataset_in_a_config(tmp_path, monkeypatch):
  root = write_tree(tmp_path / "pets")
  config = config_lib.default_config(f"folder:{root}", "tiny")
  config_lib.validate(config)
  assert config.classifier.model == "resnet"
  monkeypatch.chdir(tmp_path)
  config.dataset = "folder:pets"
  assert config_lib.with_absolute_paths(config).dataset == f"folder:{root.absolute()}"


def test_image_folder_config_file_takes_the_path(tmp_path):
  path = REPO / "configs" / "image_folder.py"
  root = write_tree(tmp_path / "pets")
  config = config_lib.load_config(f"{path}:{root},tiny")
  config_lib.validate(config)
  assert config.dataset == f"folder:{root}" and config.classifier.epochs == 1
  assert config_lib.load_config(f"{path}:{root}").classifier.epochs == 10
  with pytest.raises(ValueError, match="needs the folder or archive"):
    config_lib.load_config(str(path))


def test_config_with_missing_folder_fails_validation(tmp_path):
  config = config_lib.default_config(f"folder:{tmp_path / 'gone'}", "tiny")
  with pytest.raises(ValueError, match=r"dataset='folder:.*gone'.*does not exist"):
    config_lib.validate(config)
  config.dataset = "folder:"
  with pytest.raises(ValueError, match=r"needs a path"):
    config_lib.validate(config)


# -------------------------------------------------------------------- CLI


def test_train_classifier_on_an_image_folder(tmp_path, monkeypatch):
  import json

  from jaxinv import cli

  monkeypatch.setenv("JAXINV_TFDS_DIR", str(tmp_path / "prepared"))
  root = write_tree(tmp_path / "pets", classes=("dog", "cat"), per_class=4)
  code = cli.main(["train-classifier", "--workdir", str(tmp_path / "cls"),
                   "--config", f"{REPO / 'configs' / 'image_folder.py'}:{root},tiny",
                   "--config.classifier.model=mlp",
                   "--config.classifier.batch_size=4", "--config.classifier.epochs=1"])
  assert code == 0
  summary = json.loads((tmp_path / "cls" / "summary.json").read_text())
  assert summary["class_names"] == ["cat", "dog"]
  assert summary["data_source"] == f"image folder {root}"
  assert summary["train_examples"] == 8


def test_bad_image_folder_stops_the_command_with_its_name(tmp_path, monkeypatch, capsys):
  from jaxinv import cli

  monkeypatch.setenv("JAXINV_TFDS_DIR", str(tmp_path / "prepared"))
  root = write_tree(tmp_path / "pets")
  (root / "train" / "cat" / "notes.txt").write_text("")
  mnist_tiny = f"{REPO / 'configs' / 'mnist.py'}:tiny"  # any config takes a folder dataset
  code = cli.main(["train-classifier", "--workdir", str(tmp_path / "cls"), "--config", mnist_tiny,
                   f"--config.dataset=folder:{root}"])
  assert code == 2
  assert "train/cat/notes.txt is not a PNG or JPEG" in capsys.readouterr().err
  code = cli.main(["train-classifier", "--workdir", str(tmp_path / "cls"), "--config", mnist_tiny,
                   f"--config.dataset=folder:{tmp_path / 'missing'}"])
  assert code == 2
  assert "missing does not exist" in capsys.readouterr().err
