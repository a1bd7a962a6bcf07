"""What a run writes in its workdir: config.json, metrics.jsonl, summary.json,
figures, and the progress bar on the terminal."""

import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from jaxinv import config as config_lib


def read_config(run_dir, produced_by: str):
  """The resolved config of a finished run; a clear error if `run_dir` is not one."""
  path = Path(run_dir) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(
        f"{run_dir} has no config.json: expected the workdir of a finished `{produced_by}` run.")
  return config_lib.load_json(path)


class Workdir:
  def __init__(self, path):
    self.path = Path(path)
    self.path.mkdir(parents=True, exist_ok=True)
    self._metrics = None
    self.start_time = time.perf_counter()

  @property
  def checkpoint_dir(self) -> Path:
    return self.path / "checkpoints"

  def write_config(self, config) -> None:
    config_lib.save_json(config, self.path / "config.json")

  def log_metrics(self, step: int, metrics: dict) -> dict:
    """Appends one JSON line; returns the metrics as Python floats."""
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    record = {"step": int(step), "time_s": round(time.perf_counter() - self.start_time, 3), **values}
    if self._metrics is None:
      self._metrics = open(self.path / "metrics.jsonl", "a")
    self._metrics.write(json.dumps(record) + "\n")
    self._metrics.flush()
    return values

  def write_summary(self, summary: dict) -> None:
    (self.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

  def save_figure(self, figure, name: str) -> Path:
    import matplotlib.pyplot as plt
    out = self.path / name
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out

  def close(self) -> None:
    if self._metrics is not None:
      self._metrics.close()
      self._metrics = None


def progress(total: int, initial: int = 0, desc: str = ""):
  """A progress bar with rate and ETA on stderr."""
  return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, mininterval=2.0,
              dynamic_ncols=True, unit="step")


def check_finite(step: int, values: dict) -> None:
  """Stops the run on a non-finite loss, naming the step and the loss terms."""
  bad = {k: v for k, v in values.items() if not math.isfinite(v)}
  if bad:
    terms = ", ".join(f"{k}={v}" for k, v in values.items())
    raise FloatingPointError(
        f"Non-finite values at step {step}: {sorted(bad)} ({terms}). The run was stopped; "
        "lower the learning rate or check the inputs.")


def batched(fn, arrays, batch_size: int):
  """Applies `fn` to consecutive slices of `arrays` and concatenates the outputs (numpy).

  The last slice is padded to `batch_size` so `fn` compiles for one shape only."""
  n = len(arrays[0])
  outs = []
  for i in range(0, n, batch_size):
    chunk = [a[i:i + batch_size] for a in arrays]
    short = batch_size - len(chunk[0])
    if short:
      chunk = [np.concatenate([c, np.repeat(c[-1:], short, axis=0)]) for c in chunk]
    out = jax.device_get(fn(*chunk))
    outs.append(jax.tree.map(lambda x: x[:batch_size - short], out))
  return jax.tree.map(lambda *xs: np.concatenate(xs), *outs)
