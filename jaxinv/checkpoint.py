"""The one place that talks to Orbax: save and restore array-only pytrees.

A checkpoint holds a `TrainState` (params, batch-norm statistics, optimiser
state, step) and nothing random: every step's key is `fold_in(key, step)`.
Saves are asynchronous; `close()` waits for them.
"""

import os
from pathlib import Path

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  def __init__(self, directory: os.PathLike, *, max_to_keep: int = 3):
    self.directory = Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state) -> None:
    self._manager.save(int(step), args=ocp.args.StandardSave(state))

  def restore(self, target, step: int | None = None):
    """Restores into the structure, dtypes and shardings of `target`."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No checkpoint in {self.directory}.")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
    return False
