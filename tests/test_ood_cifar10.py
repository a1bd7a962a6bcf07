"""`jaxinv ood` with CIFAR-10 (the JPEG copy) in-distribution, on the tiny config: the airbench
recipe inside the loop, and SVHN as an OOD set read from a synthetic stand-in of its official
.mat files (no copy of SVHN is available offline)."""

import json
import os
import pathlib

import numpy as np
import pytest

from jaxinv import cli, ood

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ["JAXINV_DATA_DIR"]).resolve()  # symlinked from a temporary folder


@pytest.fixture(scope="module")
def cifar_ood_run(tmp_path_factory):
  if not (SHARED / "cifar10_jpeg").is_dir():
    pytest.skip(f"no CIFAR-10 JPEG copy in {SHARED}")
  import scipy.io

  data_dir = tmp_path_factory.mktemp("data")
  (data_dir / "cifar10_jpeg").symlink_to(SHARED / "cifar10_jpeg")
  for name in ("mnist", "fashion_mnist"):
    (data_dir / name).symlink_to(SHARED / name)
  rng = np.random.default_rng(0)
  svhn = data_dir / "svhn_cropped"
  svhn.mkdir()
  # The stand-in: 40 random 32×32×3 images per split in the official layout (X: 32×32×3×N, y: 1–10).
  for split in ("train", "test"):
    scipy.io.savemat(svhn / f"{split}_32x32.mat",
                     {"X": rng.integers(0, 256, (32, 32, 3, 40), dtype=np.uint8),
                      "y": (np.arange(40) % 10 + 1).reshape(-1, 1)})
  workdir = tmp_path_factory.mktemp("ood") / "run"
  code = cli.main(["ood", "train", "--config", str(REPO / "configs" / "ood_cifar10.py:tiny"),
                   "--workdir", str(workdir), f"--config.data_dir={data_dir}",
                   "--config.max_train_examples=256",
                   # the optional near-OOD seed, end to end, from round 1 on
                   "--config.ood.shifted_images=16", "--config.ood.shifted_from_round=1"])
  assert code == 0
  return workdir, data_dir


def test_cifar10_loop_runs_the_airbench_recipe(cifar_ood_run):
  workdir, _ = cifar_ood_run
  config = json.loads((workdir / "config.json").read_text())
  assert config["classifier"]["model"] == "airbench" and config["classifier"]["flip"]
  with np.load(workdir / "rounds/000/garbage.npz") as f:
    assert f["images"].shape[1:] == (32, 32, 3) and np.abs(f["images"]).max() <= 1.0
  baseline = json.loads((workdir / "baseline/summary.json").read_text())
  assert baseline["data_source"] == "CIFAR-10 (JPEG copy)"
  # The seed: noise, shapes, then the 16 shifted training images, which round 0 leaves out.
  seed = config["ood"]["noise_images"] + config["ood"]["shape_images"] + 16
  round0 = json.loads((workdir / "rounds/000/summary.json").read_text())
  round1 = json.loads((workdir / "rounds/001/summary.json").read_text())
  with np.load(workdir / "rounds/000/garbage.npz") as f:
    added = len(f["images"])
  assert round0["garbage_trained_on"] == seed - 16
  assert round1["garbage_trained_on"] == seed + added


def test_svhn_stand_in_is_scored_and_a_missing_default_set_is_reported(cifar_ood_run, capsys):
  workdir, data_dir = cifar_ood_run
  assert cli.main(["ood", "evaluate", "--workdir", str(workdir), "--sets", "svhn_cropped,gaussian"]) == 0
  result = json.loads((workdir / "ood_eval.json").read_text())
  # The tiny config evaluates 64 images per set: the 40 test images and 24 training ones.
  assert result["sets"]["svhn_cropped"]["images"] == 64
  for m in result["sets"]["svhn_cropped"]["scores"].values():
    assert 0.0 <= m["auroc"] <= 1.0
  # The default sets without SVHN's files: evaluated without it, and the table says why.
  for split in ("train", "test"):
    (data_dir / "svhn_cropped" / f"{split}_32x32.mat").unlink()
  capsys.readouterr()
  assert cli.main(["ood", "evaluate", "--workdir", str(workdir)]) == 0
  result = json.loads((workdir / "ood_eval.json").read_text())
  assert set(result["sets"]) == {"mnist", "fashion_mnist", *ood.SYNTHETIC_SETS}
  assert "svhn_cropped" in result["skipped"] and "test_32x32.mat is missing" in result["skipped"]["svhn_cropped"]
  assert "Not evaluated: svhn_cropped" in (workdir / "ood_table.md").read_text()
  # Asked for by name, a missing set is an error.
  capsys.readouterr()
  assert cli.main(["ood", "evaluate", "--workdir", str(workdir), "--sets", "svhn_cropped"]) == 2
  assert "test_32x32.mat is missing" in capsys.readouterr().err
