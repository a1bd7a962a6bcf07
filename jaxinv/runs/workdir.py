"""What a run writes in its workdir: config.json, metrics.jsonl, summary.json and
figures. The workdir may be a bucket (gs://...): every file goes through `jaxinv.paths`
(etils.epath)."""

import json
import time

import jax
import numpy as np
from etils.epath import Path

from jaxinv import config as config_lib
from jaxinv import paths
from jaxinv.distributed import is_primary


def read_config(run_dir, produced_by: str):
  """The resolved config of a finished run; a clear error if `run_dir` is not one."""
  paths.check_filesystem(run_dir)
  path = Path(run_dir) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(
        f"{run_dir} has no config.json: expected the workdir of a finished `{produced_by}` run.")
  return config_lib.load_json(path)


class Workdir:
  def __init__(self, path):
    self.path = paths.ensure_writable_dir(path)
    self._metrics = None
    # Buckets cannot append to an object: there metrics.jsonl is rewritten whole at each log.
    self._cloud_lines = None if not paths.is_cloud(path) else []
    self.start_time = time.perf_counter()

  @property
  def checkpoint_dir(self) -> Path:
    return self.path / "checkpoints"

  def write_config(self, config) -> None:
    if is_primary():
      config_lib.save_json(config, self.path / "config.json")

  def start(self, config, *, resuming: bool) -> None:
    """Writes config.json; when resuming, first checks it matches the saved one."""
    saved_path = self.path / "config.json"
    if resuming and saved_path.is_file():
      changed = config_lib.differences(config_lib.load_json(saved_path), config,
                                       ignore=config_lib.RESUME_MAY_CHANGE)
      if changed:
        raise ValueError(
            f"{self.path} holds checkpoints of a run with another config; changed fields: "
            + "; ".join(changed) + ". Resume with the saved config (config.json there) or choose a "
            "new workdir; nothing was changed.")
    self.write_config(config)

  def log_metrics(self, step: int, metrics: dict) -> dict:
    """Appends one JSON line; returns the metrics as Python floats."""
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    record = {"step": int(step), "time_s": round(time.perf_counter() - self.start_time, 3), **values}
    if not is_primary():
      return values
    path = self.path / "metrics.jsonl"
    if self._cloud_lines is not None:
      if not self._cloud_lines and path.exists():
        self._cloud_lines = path.read_text().splitlines(keepends=True)
      self._cloud_lines.append(json.dumps(record) + "\n")
      path.write_text("".join(self._cloud_lines))
      return values
    if self._metrics is None:
      self._metrics = path.open("a")
    self._metrics.write(json.dumps(record) + "\n")
    self._metrics.flush()
    return values

  def truncate_metrics(self, last_step: int) -> None:
    """On resume: drop logged steps after the checkpoint; they are recomputed identically."""
    path = self.path / "metrics.jsonl"
    if not path.exists() or not is_primary():
      return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and _parse_step(line) is not None and _parse_step(line) <= last_step]
    path.write_text("".join(line + "\n" for line in kept))
    if self._cloud_lines is not None:
      self._cloud_lines = [line + "\n" for line in kept]

  def write_summary(self, summary: dict) -> None:
    if is_primary():
      (self.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

  def save_figure(self, figure, name: str) -> Path:
    import matplotlib.pyplot as plt
    out = self.path / name
    if is_primary():
      paths.save_figure(figure, out, dpi=100)
    plt.close(figure)
    return out

  def close(self) -> None:
    if self._metrics is not None:
      self._metrics.close()
      self._metrics = None


def _parse_step(line: str):
  try:
    return int(json.loads(line)["step"])
  except (ValueError, KeyError, TypeError):
    return None  # a line cut by a kill: dropped


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
