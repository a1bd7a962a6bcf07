"""`fit`: run an inversion's steps with a progress bar, optional Orbax checkpoints and
exact resume, a finiteness check on every step, and SIGTERM/SIGINT handled by saving."""

import dataclasses
import os
from typing import Callable

import jax
import jax.numpy as jnp

from jaxinv import checkpoint, loop
from jaxinv.inversion import Inversion


def generator_fingerprint(generator) -> dict:
  """The generator's fields: what decides a checkpoint's arrays and meaning."""
  fields = {f.name: getattr(generator, f.name) for f in dataclasses.fields(generator)
            if f.name not in ("parent", "name")}
  if fields.get("dtype") is not None:  # JSON: the dtype's name
    fields["dtype"] = jnp.dtype(fields["dtype"]).name
  return {"class": type(generator).__name__, **fields}


def fit(inversion: Inversion, key, *, steps: int, checkpoint_dir: str | os.PathLike | None = None,
        save_every: int = 500, keep: int = 2, log_every: int = 50, progress: bool = True,
        log_metrics: Callable[[int, dict], None] | None = None, state=None):
  """Trains for `steps` steps from `inversion.init(key)` (or `state`); returns
  `(state, history)` with `history` the logged `(step, {metric: float})` pairs.

  The step is `inversion.jit_step()` (compiled once, data-parallel over the mesh,
  state donated) called with the same `key` every step; the step number is folded in.
  With `checkpoint_dir` the generator is saved every `save_every` steps and at the end,
  and a rerun with the same arguments resumes from the newest checkpoint there, giving
  the parameters an uninterrupted run gives. A non-finite loss raises
  `FloatingPointError`; SIGTERM/SIGINT saves and raises `loop.Preempted`."""
  if steps < 0:
    raise ValueError(f"steps must be ≥ 0, got {steps}.")
  fresh = inversion.jit_init()(key) if state is None else state
  ckpt, start = None, 0
  if checkpoint_dir is not None:
    kind = "generator_ensemble" if inversion.members else "generator"
    ckpt = checkpoint.Checkpointer(checkpoint_dir, kind=kind, keep=keep,
                                   fingerprint=generator_fingerprint(inversion.generator))
    restored, restored_step = ckpt.restore_latest(fresh.generator)
    if restored is not None:
      fresh, start = fresh.replace(generator=restored), int(restored_step)
  history = []

  def record(step, values):
    history.append((step, values))
    if log_metrics is not None:
      log_metrics(step, values)

  train_step = inversion.jit_step()
  try:
    state = loop.train(
        fresh, lambda s, step: train_step(s, key), start_step=start, total_steps=steps,
        log_metrics=record, checkpointer=ckpt, save_every=save_every, log_every=log_every,
        desc="inversion", postfix=("loss", "target_accuracy"), to_checkpoint=lambda s: s.generator,
        block_each_step=inversion.mesh.size > 1 and jax.default_backend() == "cpu",
        show_progress=progress)
  finally:
    if ckpt is not None:
      ckpt.close()
  return state, history
