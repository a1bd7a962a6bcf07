"""The `jaxinv` command end to end on the tiny configs."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from conftest import REPO, fake_devices_env
from jaxinv import cli, config as config_lib, data
from jaxinv.models import classifiers
from jaxinv.runs import inversion

DIGITS_TINY = str(REPO / "configs" / "digits.py:tiny")


@pytest.fixture(scope="module")
def digits_runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("digits")
  assert cli.main(["train-classifier", "--config", DIGITS_TINY, "--workdir", str(root / "cls")]) == 0
  assert cli.main(["invert", "--config", DIGITS_TINY, "--workdir", str(root / "inv"),
                   f"--config.init_from={root / 'cls'}", "--config.inversion.steps=6"]) == 0
  return root


def test_classifier_run_writes_its_outputs(digits_runs):
  cls = digits_runs / "cls"
  for name in ("config.json", "metrics.jsonl", "summary.json", "data_grid.png"):
    assert (cls / name).is_file(), name
  summary = json.loads((cls / "summary.json").read_text())
  assert 0.0 <= summary["test_accuracy"] <= 1.0
  lines = (cls / "metrics.jsonl").read_text().splitlines()
  assert lines and all("loss" in json.loads(line) for line in lines)
  assert config_lib.load_json(cls / "config.json").dataset == "digits"


def test_inversion_run_writes_its_outputs(digits_runs):
  inv = digits_runs / "inv"
  for name in ("config.json", "metrics.jsonl", "summary.json", "samples_grid.png"):
    assert (inv / name).is_file(), name
  summary = json.loads((inv / "summary.json").read_text())
  assert len(summary["target_accuracy_per_class"]) == 10
  assert all(0.0 <= a <= 1.0 for a in summary["target_accuracy_per_class"])
  assert summary["classifier"]["workdir"] == str((digits_runs / "cls").absolute())
  assert summary["steps"] == 6
  record = json.loads((inv / "metrics.jsonl").read_text().splitlines()[-1])
  for term in ("loss_kl", "loss_ce", "loss_cosine", "loss_orthogonality", "target_accuracy"):
    assert term in record


def test_sample_writes_requested_labels(digits_runs, tmp_path):
  out = tmp_path / "s.npz"
  assert cli.main(["sample", "--workdir", str(digits_runs / "inv"), "--num-per-class", "3",
                   "--out", str(out), "--classes", "2,5"]) == 0
  with np.load(out) as f:
    images, labels = f["images"], f["labels"]
  assert images.shape == (6, 28, 28, 1) and images.dtype == np.float32
  assert images.min() >= -1.0 and images.max() <= 1.0
  np.testing.assert_array_equal(labels, [2, 2, 2, 5, 5, 5])
  # Same seed, same images.
  out2 = tmp_path / "s2.npz"
  cli.main(["sample", "--workdir", str(digits_runs / "inv"), "--num-per-class", "3",
            "--out", str(out2), "--classes", "2,5"])
  with np.load(out2) as f:
    np.testing.assert_array_equal(f["images"], images)


def test_sample_rejects_bad_labels(digits_runs, tmp_path, capsys):
  assert cli.main(["sample", "--workdir", str(digits_runs / "inv"), "--num-per-class", "1",
                   "--out", str(tmp_path / "x.npz"), "--classes", "11"]) == 2
  assert "Requested labels" in capsys.readouterr().err


def test_mnist_tiny_from_real_files(tmp_path, monkeypatch, data_dir, tfds_dir):
  monkeypatch.setenv("JAXINV_TFDS_DIR", str(tfds_dir))  # shared with test_data
  config = str(REPO / "configs" / "mnist.py:tiny")
  assert cli.main(["train-classifier", "--config", config, "--workdir", str(tmp_path / "cls")]) == 0
  assert cli.main(["invert", "--config", config, "--workdir", str(tmp_path / "inv"),
                   f"--config.init_from={tmp_path / 'cls'}", "--config.inversion.steps=4"]) == 0
  summary = json.loads((tmp_path / "cls" / "summary.json").read_text())
  # 512 real training images for one epoch already beat chance clearly, scored on the
  # tiny config's first 1,000 test images.
  assert summary["test_accuracy"] > 0.3
  assert (summary["train_examples"], summary["test_examples"]) == (512, 1000)


def test_demo_runs_classifier_and_inversion(tmp_path, capsys):
  assert cli.main(["demo", "--workdir", str(tmp_path), "--config", DIGITS_TINY,
                   "--config.inversion.steps=3"]) == 0
  assert (tmp_path / "classifier" / "summary.json").is_file()
  assert (tmp_path / "inversion" / "samples_grid.png").is_file()
  assert "target accuracy per class" in capsys.readouterr().out


@pytest.mark.parametrize("args,match", [
    (["--config.dataset=imagenet"], "dataset='imagenet'"),
    (["--config.inversion.stepz=3"], "Unknown config field 'inversion.stepz'"),
])
def test_bad_config_gives_a_named_error(tmp_path, capsys, args, match):
  code = cli.main(["train-classifier", "--config", DIGITS_TINY, "--workdir", str(tmp_path), *args])
  assert code == 2
  assert match in capsys.readouterr().err


def test_invert_without_classifier_is_explained(tmp_path, capsys):
  assert cli.main(["invert", "--config", DIGITS_TINY, "--workdir", str(tmp_path)]) == 2
  assert "init_from" in capsys.readouterr().err


def test_classifier_of_another_input_shape_is_rejected(tmp_path, capsys):
  # A 10-class folder of 32×32 colour images, written here: a classifier of CIFAR-10's shape.
  for split in ("train", "test"):
    for k in range(10):
      (tmp_path / "rgb" / split / f"c{k}").mkdir(parents=True)
      for i in range(2):
        Image.new("RGB", (32, 32), (20 * k + i, 0, 0)).save(tmp_path / "rgb" / split / f"c{k}" / f"{i}.png")
  assert cli.main(["train-classifier", "--config", DIGITS_TINY, "--workdir", str(tmp_path / "cls"),
                   f"--config.dataset=folder:{tmp_path / 'rgb'}", "--config.classifier.batch_size=4"]) == 0
  code = cli.main(["invert", "--config", DIGITS_TINY, "--workdir", str(tmp_path / "inv"),
                   f"--config.init_from={tmp_path / 'cls'}"])
  assert code == 2
  assert "takes (32, 32, 3) images" in capsys.readouterr().err


def test_classifier_with_wrong_class_count_is_rejected():
  info = data.info("digits")
  model = classifiers.MLP(num_classes=5)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  config = config_lib.default_config("digits")
  config.init_from = "/some/classifier"
  with pytest.raises(ValueError, match="outputs 5 classes but the generator is conditioned on 10"):
    inversion.check_compatible(config, info, model, variables, config)


def test_batch_not_divisible_by_devices(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "jaxinv.cli", "train-classifier", "--config", DIGITS_TINY,
       "--workdir", str(tmp_path), "--config.classifier.batch_size=30"],
      env=fake_devices_env(4), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert "classifier.batch_size=30 is not divisible by the 4 devices" in proc.stderr


def test_sample_many_generators_in_one_call(digits_runs, tmp_path):
  """An ensemble workdir contributes each member; a plain one its generator."""
  sweep = tmp_path / "sweep"
  assert cli.main(["invert", "--config", DIGITS_TINY, "--workdir", str(sweep),
                   f"--config.init_from={digits_runs / 'cls'}", "--config.inversion.steps=4",
                   "--config.ensemble.seeds=[5, 6]", "--config.ensemble.dropout_rate=[0.1, 0.3]"]) == 0
  summary = json.loads((sweep / "summary.json").read_text())
  assert [m["dropout_rate"] for m in summary["members"]] == [0.1, 0.3]
  assert (sweep / "samples_grid_member1.png").is_file()
  out = tmp_path / "many.npz"
  assert cli.main(["sample", "--workdir", str(sweep), "--workdir", str(digits_runs / "inv"),
                   "--num-per-class", "2", "--out", str(out), "--classes", "1,7"]) == 0
  with np.load(out) as f:
    assert f["images"].shape == (12, 28, 28, 1)
    np.testing.assert_array_equal(f["generator"], np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(f["labels"], np.tile([1, 1, 7, 7], 3))
    assert list(f["generator_names"]) == [f"{sweep}[0]", f"{sweep}[1]", f"{digits_runs / 'inv'}[0]"]
    many = f["images"]
  # The plain generator's rows are what sampling it alone gives.
  alone = tmp_path / "alone.npz"
  cli.main(["sample", "--workdir", str(digits_runs / "inv"), "--num-per-class", "2",
            "--out", str(alone), "--classes", "1,7"])
  with np.load(alone) as f:
    np.testing.assert_allclose(many[8:], f["images"], atol=1e-5)


def test_figure_of_inversions_has_a_panel_per_run(digits_runs, tmp_path):
  out = tmp_path / "figure2.png"
  inv = str(digits_runs / "inv")
  assert cli.main(["figure", "inversions", "--workdir", inv, "--workdir", inv, "--num-per-class", "3",
                   "--out", str(out)]) == 0
  assert out.stat().st_size > 0
  from jaxinv.runs import paper_figures
  figure = paper_figures.inversions([inv, inv], num_per_class=3)
  assert [ax.get_title() for ax in figure.axes] == ["digits", "digits"]
  assert len(figure.axes[0].get_yticklabels()) == 10  # a row per class
