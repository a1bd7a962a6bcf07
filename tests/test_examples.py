"""The scripts in examples/ run as a user runs them, on tiny settings."""

import importlib.util

import numpy as np

from conftest import REPO


def _example(name):
  spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _check_accuracies(values):
  values = np.asarray(values)
  assert values.shape == (10,) and np.all((values >= 0) & (values <= 1))


def test_invert_linen_model(tmp_path, capsys):
  out = tmp_path / "grid.png"
  accuracy = _example("invert_linen_model").main(
      ["--steps", "4", "--classifier-steps", "20", "--samples-per-class", "4", "--out", str(out)])
  _check_accuracies(accuracy)
  assert out.stat().st_size > 0
  assert "target accuracy per class" in capsys.readouterr().out


def test_invert_sklearn_model(capsys):
  result = _example("invert_sklearn_model").main(
      ["--steps", "4", "--verifier-epochs", "1", "--samples-per-class", "4"])
  _check_accuracies(result["target_accuracy_per_class"])
  _check_accuracies(result["verifier_accuracy_per_class"])
  printed = capsys.readouterr().out
  assert float(printed.split("scikit-learn MLP test accuracy: ")[1].split()[0]) > 0.9


def test_invert_nnx_model(capsys):
  accuracy = _example("invert_nnx_model").main(
      ["--steps", "4", "--classifier-steps", "20", "--samples-per-class", "4"])
  _check_accuracies(accuracy)
  assert "classifier test accuracy" in capsys.readouterr().out


def test_my_classifier_factory_returns_a_working_classifier():
  classifier = _example("my_classifier").factory()
  logits, aux = classifier.apply_fn(classifier.params, np.zeros((2, 28, 28, 1), np.float32))
  assert logits.shape == (2, 10) and aux["features"].shape == (2, 10)
