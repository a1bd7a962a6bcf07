"""`jaxinv invert --config.classifier_fn=...`: the command inverts a user's classifier, and
`sample` / `evaluate` work on the workdir it writes."""

import json

import numpy as np
import pytest

from conftest import REPO
from jaxinv import cli
from jaxinv.runs import target

DIGITS_TINY = str(REPO / "configs" / "digits.py:tiny")
FACTORY = f"{REPO / 'examples' / 'my_classifier.py'}:factory"


@pytest.fixture(scope="module")
def user_inversion(tmp_path_factory):
  root = tmp_path_factory.mktemp("user")
  assert cli.main(["invert", "--config", DIGITS_TINY, "--workdir", str(root / "inv"),
                   f"--config.classifier_fn={FACTORY}", "--config.inversion.steps=6"]) == 0
  return root


def test_invert_writes_an_ordinary_workdir(user_inversion):
  summary = json.loads((user_inversion / "inv" / "summary.json").read_text())
  assert summary["classifier"] == {"classifier_fn": FACTORY}
  assert len(summary["target_accuracy_per_class"]) == 10
  assert (user_inversion / "inv" / "samples_grid.png").is_file()


def test_sample_and_evaluate_work_on_it(user_inversion, tmp_path):
  inv = str(user_inversion / "inv")
  assert cli.main(["sample", "--workdir", inv, "--num-per-class", "3", "--out",
                   str(tmp_path / "s.npz")]) == 0
  with np.load(tmp_path / "s.npz") as f:
    assert f["images"].shape == (30, 28, 28, 1)
  assert cli.main(["evaluate", "--workdir", inv, "--num-per-class", "4", "--no-figures",
                   "--out", str(tmp_path / "eval")]) == 0
  metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
  assert metrics["target_classifier"]["model"] == FACTORY
  assert 0.0 <= metrics["target_accuracy"] <= 1.0


def test_bad_factories_are_named(tmp_path, capsys):
  bad = tmp_path / "bad.py"
  bad.write_text("def factory():\n  return 3\n")
  for spec, message in ((f"{bad}:factory", "returned a int"), (f"{bad}:missing", "has no 'missing'"),
                        ("no_such_module_xyz:factory", "cannot import"),
                        (f"{tmp_path / 'absent.py'}:factory", "no file")):
    with pytest.raises(ValueError, match=message):
      target.from_factory(spec)
  assert cli.main(["invert", "--config", DIGITS_TINY, "--workdir", str(tmp_path / "w"),
                   "--config.classifier_fn=nocolon"]) == 2
  assert "classifier_fn" in capsys.readouterr().err
