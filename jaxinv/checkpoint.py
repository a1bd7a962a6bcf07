"""The one place that talks to Orbax: save and restore training states, safely.

A checkpoint at step N is a folder `N/` with three items:

- `model`: `{"params", "batch_stats"}` — all another run needs (an inversion run
  restores only this item of its classifier's checkpoint);
- `optimizer`: `{"opt_state", "step"}`;
- `meta`: JSON — what wrote it (`kind`, and a `fingerprint` of the config fields
  that decide the array shapes), so a checkpoint of another model is named as such.

Nothing random is saved: every step's key is `fold_in(key, step)`. Saves are
asynchronous; `wait()`/`close()` wait for them and turn a failed write into a
`CheckpointError`. Orbax writes each step into a temporary folder and renames it
when complete, so a killed or failed save never replaces a finished checkpoint.
Nothing here deletes a checkpoint except Orbax's keep-the-last-K rotation after a
newer save has succeeded; an unreadable checkpoint is only ever moved aside, and
only when the caller asks for the fallback.
"""

import logging
import os
import time
from etils.epath import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxinv import paths

log = logging.getLogger(__name__)
UNREADABLE_DIR = "checkpoints_unreadable"  # sibling of the checkpoint folder


class CheckpointError(RuntimeError):
  """A checkpoint could not be written, read, or does not belong to this run."""


class Checkpointer:
  def __init__(self, directory: os.PathLike, *, kind: str, fingerprint: dict | None = None,
               keep: int = 3):
    self.directory = Path(paths.absolute(directory))  # a bucket (gs://...) stays one
    self.kind = kind
    self.fingerprint = _jsonable(fingerprint or {})
    try:
      self._manager = ocp.CheckpointManager(
          self.directory,
          options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
          item_handlers={"model": ocp.StandardCheckpointHandler(),
                         "optimizer": ocp.StandardCheckpointHandler(),
                         "meta": ocp.JsonCheckpointHandler()})
    except OSError as err:
      raise CheckpointError(f"Cannot create the checkpoint folder {self.directory}: {err}. "
                            "Choose a writable workdir.") from err
    self.save_seconds = []  # wall time of each save call (the async part is awaited in wait())

  # --- listing ---
  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  # --- saving ---
  def save(self, step: int, state, **meta) -> None:
    """Starts an asynchronous save of a `TrainState` at `step`."""
    self.wait()  # surfaces a failure of the previous save before starting another
    start = time.perf_counter()
    items = _split(state)
    record = {"kind": self.kind, "step": int(step), "fingerprint": self.fingerprint,
              **_jsonable(meta)}
    try:
      saved = self._manager.save(int(step), force=True, args=ocp.args.Composite(
          model=ocp.args.StandardSave(items["model"]),
          optimizer=ocp.args.StandardSave(items["optimizer"]),
          meta=ocp.args.JsonSave(record)))
    except Exception as err:  # noqa: BLE001 — any failure to write is reported the same way
      raise self._write_error(step, err) from err
    if not saved:
      raise CheckpointError(f"Orbax declined to save step {step} in {self.directory} (newest "
                            f"existing step: {self.latest_step()}); nothing was overwritten.")
    self.save_seconds.append(time.perf_counter() - start)

  def wait(self) -> None:
    try:
      self._manager.wait_until_finished()
    except Exception as err:  # noqa: BLE001
      raise self._write_error(self.latest_step(), err) from err

  def _write_error(self, step, err) -> CheckpointError:
    intact = [s for s in self.all_steps() if s != step]
    return CheckpointError(
        f"Writing the checkpoint at step {step} in {self.directory} failed: {err}. The run was "
        f"stopped; earlier checkpoints are untouched (steps {intact or 'none'}). Free disk space or "
        "make the workdir writable, then rerun the same command to resume.")

  # --- restoring ---
  def restore(self, target, step: int | None = None):
    """The `TrainState` at `step` (default: latest), in `target`'s structure, dtypes and
    shardings. A foreign or unreadable checkpoint raises `CheckpointError`."""
    step = self._step_or_latest(step)
    self._check_belongs(step)
    expected = _split(target)
    self._check_shapes(step, expected)
    restored = self._read(step, model=expected["model"], optimizer=expected["optimizer"])
    return _join(target, restored["model"], restored["optimizer"])

  def restore_model(self, model_target, step: int | None = None) -> dict:
    """Only the `model` item (`params`, `batch_stats`): a partial restore."""
    step = self._step_or_latest(step)
    self._check_belongs(step)
    self._check_shapes(step, {"model": model_target})
    return self._read(step, model=model_target)["model"]

  def read_meta(self, step: int) -> dict:
    try:
      return dict(self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
                  ["meta"])
    except Exception as err:  # noqa: BLE001
      raise CheckpointError(
          f"The checkpoint at step {step} in {self.directory} is unreadable (its meta item: "
          f"{_first_line(err)}).") from err

  def restore_latest(self, target, *, fallback: bool = False):
    """`(state, step)` from the newest checkpoint, or `(None, None)` when there is none.

    When the newest one is unreadable or foreign, the error names it; with
    `fallback=True` it is moved to `checkpoints_unreadable/` beside this folder (never
    deleted) and the next newest intact one is used."""
    steps = self.all_steps()
    for step in reversed(steps):
      try:
        return self.restore(target, step), step
      except CheckpointError as err:
        if not fallback:
          older = self._newest_intact(target, [s for s in steps if s < step])
          hint = (f"The newest intact checkpoint is step {older}: pass "
                  "--config.checkpoint.fallback_to_intact=true to resume from it (the bad one is "
                  f"moved to {self.directory.parent / UNREADABLE_DIR}, not deleted)."
                  if older is not None else "No older intact checkpoint exists here.")
          raise CheckpointError(f"{err}\nNothing was deleted or overwritten. {hint}") from None
        moved = self._move_aside(step)
        log.warning("checkpoint step %d is unusable (%s); moved to %s, trying older ones",
                    step, err, moved)
    return None, None

  def _newest_intact(self, target, steps):
    for step in reversed(steps):
      try:
        self.restore(target, step)
        return step
      except CheckpointError:
        continue
    return None

  def _move_aside(self, step: int) -> Path:
    self.wait()
    destination = self.directory.parent / UNREADABLE_DIR / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
    destination.parent.mkdir(parents=True, exist_ok=True)
    (self.directory / str(step)).rename(destination)
    self._manager.reload()
    return destination

  def _step_or_latest(self, step):
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"No checkpoint in {self.directory}.")
    return step

  def _check_belongs(self, step: int) -> None:
    meta = self.read_meta(step)
    problems = []
    if meta.get("kind") != self.kind:
      problems.append(f"kind: saved {meta.get('kind')!r}, expected {self.kind!r}")
    saved = meta.get("fingerprint", {})
    for key in sorted(set(saved) | set(self.fingerprint)):
      if saved.get(key) != self.fingerprint.get(key):
        problems.append(f"{key}: saved {saved.get(key)!r}, this run {self.fingerprint.get(key)!r}")
    if problems:
      raise CheckpointError(
          f"The checkpoint at step {step} in {self.directory} was written for another "
          f"model/config; mismatched items: " + "; ".join(problems) + ".")

  def _check_shapes(self, step: int, expected: dict) -> None:
    try:
      stored = self._manager.item_metadata(step)
    except Exception as err:  # noqa: BLE001
      raise CheckpointError(f"The checkpoint at step {step} in {self.directory} is unreadable "
                            f"(metadata: {_first_line(err)}).") from err
    problems = []
    for item, tree in expected.items():
      meta = stored[item] if item in stored else None
      if meta is None:
        problems.append(f"item {item!r} missing")
        continue
      saved = _shapes(meta.tree if hasattr(meta, "tree") else meta)
      wanted = _shapes(tree)
      for path in sorted(set(saved) | set(wanted)):
        if saved.get(path) != wanted.get(path):
          problems.append(f"{item}/{path}: saved {saved.get(path, 'absent')}, "
                          f"expected {wanted.get(path, 'absent')}")
    if problems:
      shown = "; ".join(problems[:8]) + (f"; … {len(problems) - 8} more" if len(problems) > 8 else "")
      raise CheckpointError(f"The checkpoint at step {step} in {self.directory} does not match this "
                            f"model; mismatched items: {shown}.")

  def _read(self, step: int, **items):
    args = {name: ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, tree))
            for name, tree in items.items()}
    try:
      return self._manager.restore(step, args=ocp.args.Composite(**args))
    except Exception as err:  # noqa: BLE001 — truncated/missing files surface as many types
      raise CheckpointError(
          f"The checkpoint at step {step} in {self.directory} is unreadable (missing or truncated "
          f"files in {sorted(items)}: {_first_line(err)}).") from err

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self._manager.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
    return False


def restore_target(init_fn, *args):
  """A restore target shaped like `init_fn(*args)`, found by tracing it (`jax.eval_shape`),
  never by running it: zeros of the right shapes and dtypes."""
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(init_fn, *args))


def _split(state) -> dict:
  return {"model": {"params": state.params, "batch_stats": state.batch_stats},
          "optimizer": {"opt_state": state.opt_state, "step": state.step}}


def _join(target, model, optimizer):
  return target.replace(params=model["params"], batch_stats=model["batch_stats"],
                        opt_state=optimizer["opt_state"], step=optimizer["step"])


def _shapes(tree) -> dict:
  """`{"params/conv/kernel": "(3, 3, 1, 32) float32", …}` for array leaves."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  out = {}
  for path, leaf in flat:
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
      out["/".join(_key_name(k) for k in path)] = f"{tuple(leaf.shape)} {np.dtype(leaf.dtype).name}"
  return out


def _key_name(key) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _jsonable(value):
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  return value


def _first_line(err: Exception) -> str:
  text = str(err).strip().splitlines()
  return f"{type(err).__name__}: {text[0] if text else ''}"[:300]
