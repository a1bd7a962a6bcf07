"""Killed runs resume exactly: kill -9 and SIGTERM at random steps, in subprocesses.

Each chain is: start, kill at a random step, rerun the same command (resumes),
kill again at a later random step, rerun to the end; the final parameters must
be bitwise identical to an uninterrupted run's, and so must the logged losses.
"""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import REPO, fake_devices_env
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import inversion as inversion_run
from jaxinv.loop import EXIT_PREEMPTED

CLASSIFIER_ARGS = ["train-classifier", "--config", str(REPO / "configs/digits.py:tiny"),
                   "--config.classifier.epochs=12", "--config.classifier.log_every=1",
                   "--config.checkpoint.every=7"]  # 96 steps; saves at 7, 14, …
INVERSION_ARGS = ["invert", "--config", str(REPO / "configs/digits.py:tiny"),
                  "--config.inversion.steps=60", "--config.inversion.log_every=1",
                  "--config.checkpoint.every=7"]
ENV = fake_devices_env(1)
RNG = random.Random(20261127)


def _command(args, workdir):
  return [sys.executable, "-m", "jaxinv.cli", *args, "--workdir", str(workdir)]


def _last_logged_step(workdir: Path) -> int:
  path = workdir / "metrics.jsonl"
  if not path.exists():
    return 0
  steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]
  return steps[-1] if steps else 0


def _run(args, workdir):
  done = subprocess.run(_command(args, workdir), env=ENV, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  return done


def _run_and_signal(args, workdir, at_step: int, sig) -> tuple[int, str, int]:
  """Starts the command, sends `sig` once step `at_step` is logged; returns
  (exit code, stderr, last step logged before the signal)."""
  # Lines logged by an earlier, killed run are still there until the resumed run
  # truncates them: wait for steps beyond them.
  at_step = max(at_step, _last_logged_step(workdir) + 2)
  proc = subprocess.Popen(_command(args, workdir), env=ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + 300
  seen = 0
  while time.monotonic() < deadline:
    seen = _last_logged_step(workdir)
    if seen >= at_step:
      proc.send_signal(sig)
      break
    assert proc.poll() is None, f"run ended before step {at_step}: {proc.stderr.read()[-3000:]}"
    time.sleep(0.002)
  _, err = proc.communicate(timeout=300)
  return proc.returncode, err, seen


def _losses(workdir: Path) -> list:
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if k != "time_s"} for r in records]


def _assert_bitwise_equal(a, b):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b
  for x, y in zip(leaves_a, leaves_b):
    assert np.array_equal(np.asarray(x), np.asarray(y)), "parameters differ after resume"


@pytest.fixture(scope="module")
def reference_classifier(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference") / "classifier"
  _run(CLASSIFIER_ARGS, workdir)
  return workdir


def test_classifier_kill9_twice_resumes_bitwise(tmp_path, reference_classifier):
  workdir = tmp_path / "classifier"
  first, second = sorted(RNG.sample(range(5, 90), 2))
  code, _, killed_at = _run_and_signal(CLASSIFIER_ARGS, workdir, first, signal.SIGKILL)
  assert code == -signal.SIGKILL
  code, _, killed_again_at = _run_and_signal(CLASSIFIER_ARGS, workdir, second, signal.SIGKILL)
  assert code == -signal.SIGKILL
  assert killed_again_at > killed_at
  _run(CLASSIFIER_ARGS, workdir)
  print(f"classifier killed (-9) after logged steps {killed_at} and {killed_again_at} of 96")

  _, resumed, _, resumed_step = classifier_run.restore(workdir)
  _, reference, _, reference_step = classifier_run.restore(reference_classifier)
  assert resumed_step == reference_step == 96
  _assert_bitwise_equal(resumed, reference)
  assert _losses(workdir) == _losses(reference_classifier)


def test_inversion_kill9_then_sigterm_resumes_bitwise(tmp_path, reference_classifier):
  init = [f"--config.init_from={reference_classifier}"]
  reference_dir = tmp_path / "reference_inversion"
  _run(INVERSION_ARGS + init, reference_dir)

  workdir = tmp_path / "inversion"
  first, second = sorted(RNG.sample(range(3, 55), 2))
  code, _, killed_at = _run_and_signal(INVERSION_ARGS + init, workdir, first, signal.SIGKILL)
  assert code == -signal.SIGKILL
  # SIGTERM: finish the step, save a checkpoint at it, exit 75 with a message.
  code, err, _ = _run_and_signal(INVERSION_ARGS + init, workdir, second, signal.SIGTERM)
  assert code == EXIT_PREEMPTED, err[-3000:]
  assert "Stopped by SIGTERM after step" in err and "Rerun the same command to resume" in err
  stopped_at = int(err.split("Stopped by SIGTERM after step ")[1].split(";")[0])
  with inversion_run.open_checkpoints(inversion_run.read_config(workdir, "invert"),
                                      workdir / "checkpoints") as ckpt:
    assert ckpt.latest_step() == stopped_at
  assert _last_logged_step(workdir) == stopped_at
  _run(INVERSION_ARGS + init, workdir)
  print(f"inversion killed (-9) after logged step {killed_at}, SIGTERM saved at step {stopped_at} of 60")

  _, resumed, _ = inversion_run.restore(workdir)
  _, reference, _ = inversion_run.restore(reference_dir)
  _assert_bitwise_equal(resumed, reference)
  assert _losses(workdir) == _losses(reference_dir)
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["classifier"]["step"] == 96
  assert summary["classifier"]["path"] == str(reference_classifier.absolute() / "checkpoints")
