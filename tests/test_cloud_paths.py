"""Workdirs in a bucket: a tiny classifier and inversion run, resume and sample with gs://
paths (a fake gs:// backed by a temporary folder: tests/fake_gcs.py); and the bad inputs —
a bucket without its filesystem package, an unwritable workdir — are clear errors before
any compile."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fake_gcs import fake_gcs
from jaxinv import cli, paths
from jaxinv import config as config_lib
from jaxinv.runs import classifier as classifier_run

REPO = Path(__file__).resolve().parents[1]
DIGITS_TINY = str(REPO / "configs" / "digits.py:tiny")


def test_paths_keep_buckets_as_they_are():
  assert paths.absolute("gs://bucket/run") == "gs://bucket/run"
  assert paths.absolute("relative/run") == os.path.abspath("relative/run")
  config = config_lib.default_config("digits")
  config.init_from = "gs://bucket/cls"
  config.classifier_ensemble.workdirs = ("gs://bucket/a", "local")
  done = config_lib.with_absolute_paths(config)
  assert done.init_from == "gs://bucket/cls"
  assert done.classifier_ensemble.workdirs == ("gs://bucket/a", os.path.abspath("local"))


def test_classifier_inversion_resume_and_sample_in_a_bucket(tmp_path, monkeypatch, capsys):
  with fake_gcs(tmp_path / "gcs", monkeypatch) as local:
    cls, inv = "gs://bucket/cls", "gs://bucket/inv"
    train = ["train-classifier", "--config", DIGITS_TINY, "--workdir", cls,
             "--config.classifier.steps=4", "--config.checkpoint.every=2", "--config.classifier.log_every=1"]
    assert cli.main(train) == 0, capsys.readouterr().err
    folder = Path(local(cls))
    assert {"config.json", "metrics.jsonl", "summary.json", "data_grid.png"} <= {p.name for p in folder.iterdir()}
    assert (folder / "checkpoints" / "4").is_dir()
    assert [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert cli.main(train) == 0, capsys.readouterr().err  # resumes from its step-4 checkpoint in the bucket
    assert [json.loads(line)["step"] for line in (folder / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]

    invert = ["invert", "--config", DIGITS_TINY, "--workdir", inv, f"--config.init_from={cls}",
              "--config.inversion.steps=4", "--config.checkpoint.every=2"]
    assert cli.main(invert) == 0, capsys.readouterr().err
    assert cli.main(invert) == 0, capsys.readouterr().err  # resumes
    summary = json.loads(Path(local(inv), "summary.json").read_text())
    assert summary["classifier"]["workdir"] == cls

    out = "gs://bucket/samples/s.npz"
    assert cli.main(["sample", "--workdir", inv, "--num-per-class", "2", "--out", out]) == 0
    arrays = paths.load_npz(local(out))
    assert arrays["images"].shape[0] == 2 * 10 and np.isfinite(arrays["images"]).all()


def test_a_bucket_without_its_filesystem_package_is_named(tmp_path, capsys):
  # No gcsfs (or TensorFlow) here: epath cannot open gs:// paths.
  pytest.importorskip("fsspec")
  try:
    import gcsfs  # noqa: F401
    pytest.skip("gcsfs is installed")
  except ImportError:
    pass
  code = cli.main(["train-classifier", "--config", DIGITS_TINY, "--workdir", "gs://bucket/run"])
  assert code == 2
  assert "gs://bucket/run: reading and writing gs:// paths needs `pip install gcsfs`" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_workdir_is_named_before_any_compile(tmp_path, monkeypatch):
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o500)
  compiled = []
  monkeypatch.setattr(classifier_run.jax, "jit", lambda *a, **k: compiled.append(a))
  config = config_lib.load_config(DIGITS_TINY)
  with pytest.raises(PermissionError, match="is not writable"):
    classifier_run.run(config, locked / "run")
  assert not compiled


def test_an_unwritable_workdir_is_named_even_as_root(tmp_path, monkeypatch):
  """The same check, with the write itself refused (root ignores folder permissions)."""
  from etils import epath

  def refuse(self, *args, **kwargs):
    raise PermissionError(13, "Permission denied")

  monkeypatch.setattr(epath.gpath.PosixGPath, "write_text", refuse)
  config = config_lib.load_config(DIGITS_TINY)
  with pytest.raises(PermissionError, match="is not writable .Permission denied."):
    classifier_run.run(config, tmp_path / "run")


def test_a_bucket_data_folder_is_read_from_a_local_copy(tmp_path, monkeypatch):
  from jaxinv import data
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  with fake_gcs(tmp_path / "gcs", monkeypatch) as local:
    Path(local("gs://bucket/data/mnist")).mkdir(parents=True)
    Path(local("gs://bucket/data/mnist/train-labels-idx1-ubyte")).write_bytes(b"\x00\x01")
    mirror = data._local_mirror("gs://bucket/data", "mnist")
  assert mirror == tmp_path / "cache" / "jaxinv" / "data" / "gs" / "bucket" / "data"
  assert (mirror / "mnist" / "train-labels-idx1-ubyte").read_bytes() == b"\x00\x01"
