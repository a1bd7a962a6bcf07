"""Two processes on 127.0.0.1 (CPU, gloo collectives) train like one process with the
same global batch and mesh: each feeds its half of the batch, only process 0 writes files."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np

from conftest import REPO, fake_devices_env
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import inversion as inversion_run

DIGITS_TINY = str(REPO / "configs" / "digits.py:tiny")
STEPS = 4


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(args, workdir, processes=None):
  """Runs `jaxinv ARGS` as one process with 2 devices, or as `processes` cooperating
  processes with one device each: the same 2-device mesh and global batch, so the
  comparison isolates the multi-process plumbing (process-local batches, gloo
  collectives, process-0 writes) from the device count (see test_multidevice)."""
  command = [sys.executable, "-m", "jaxinv.cli", *args, "--workdir", str(workdir)]
  if processes is None:
    done = subprocess.run(command, env=fake_devices_env(2), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return
  port = _free_port()
  procs = []
  for i in range(processes):
    env = fake_devices_env(1)
    env.update(JAXINV_DISTRIBUTED="1", JAXINV_COORDINATOR=f"127.0.0.1:{port}",
               JAXINV_NUM_PROCESSES=str(processes), JAXINV_PROCESS_ID=str(i))
    procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True))
  outputs = [p.communicate(timeout=300) for p in procs]
  for i, (p, (_, err)) in enumerate(zip(procs, outputs)):
    assert p.returncode == 0, f"process {i}: {err[-3000:]}"


def _max_diff(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _logged_steps(workdir):
  return [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one(tmp_path):
  classifier_args = ["train-classifier", "--config", DIGITS_TINY, f"--config.max_train_examples={64 * STEPS}",
                     "--config.classifier.log_every=1", "--config.checkpoint.every=2"]
  _launch(classifier_args, tmp_path / "cls_single")
  _launch(classifier_args, tmp_path / "cls_two", processes=2)
  _, single, _, _ = classifier_run.restore(tmp_path / "cls_single")
  _, two, _, step = classifier_run.restore(tmp_path / "cls_two")
  assert step == STEPS
  assert _max_diff(single, two) < 1e-5
  assert _logged_steps(tmp_path / "cls_two") == list(range(1, STEPS + 1))  # written once
  assert json.loads((tmp_path / "cls_two" / "summary.json").read_text())["devices"] == 2

  inversion_args = ["invert", "--config", DIGITS_TINY, f"--config.init_from={tmp_path / 'cls_single'}",
                    f"--config.inversion.steps={STEPS}", "--config.inversion.log_every=1",
                    "--config.checkpoint.every=2", "--config.inversion.eval_samples_per_class=4"]
  _launch(inversion_args, tmp_path / "inv_single")
  _launch(inversion_args, tmp_path / "inv_two", processes=2)
  _, single, _ = inversion_run.restore(tmp_path / "inv_single")
  _, two, _ = inversion_run.restore(tmp_path / "inv_two")
  assert _max_diff(single, two) < 1e-5
  assert _logged_steps(tmp_path / "inv_two") == list(range(1, STEPS + 1))
  assert (tmp_path / "inv_two" / "samples_grid.png").is_file()
