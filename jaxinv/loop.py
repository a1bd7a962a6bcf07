"""The training loop every run shares (`jaxinv.fit` too): periodic checkpoints, a
finiteness check on every step, metrics and progress, and preemption by SIGTERM/SIGINT.

Exit convention (the CLI maps `Preempted` to it): a run stopped by SIGTERM or
SIGINT finishes its current step, saves a checkpoint at that step and exits with
`EXIT_PREEMPTED` (75, sysexits' EX_TEMPFAIL: "try again"). Rerunning the same
command resumes from that checkpoint.
"""

import logging
import math
import signal
import sys
import threading

import jax
from tqdm import tqdm

from jaxinv import distributed

EXIT_PREEMPTED = 75
log = logging.getLogger(__name__)


def progress(total: int, initial: int = 0, desc: str = "", enabled: bool = True):
  """A progress bar with rate and ETA on stderr (process 0 only)."""
  return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, mininterval=2.0,
              dynamic_ncols=True, unit="step", disable=not (enabled and distributed.is_primary()))


def check_finite(step: int, values: dict, last_checkpoint: int | None = None) -> None:
  """Stops the run on a non-finite loss or gradient, naming the step and the loss terms."""
  bad = {k: v for k, v in values.items() if not math.isfinite(v)}
  if bad:
    terms = ", ".join(f"{k}={v}" for k, v in values.items())
    kept = (f"the latest checkpoint is still the last good one (step {last_checkpoint})"
            if last_checkpoint is not None else "no checkpoint had been written yet")
    raise FloatingPointError(
        f"Non-finite values at step {step}: {sorted(bad)} ({terms}). The run was stopped and "
        f"{kept}; lower the learning rate or check the inputs.")


class Preempted(Exception):
  def __init__(self, signal_name: str, step: int, directory):
    self.signal_name, self.step, self.directory = signal_name, step, directory
    super().__init__(f"Stopped by {signal_name} after step {step}; checkpoint saved at step {step} in "
                     f"{directory}. Rerun the same command to resume.")


class StopSignals:
  """Records SIGTERM/SIGINT instead of dying; a second signal acts as usual."""

  def __init__(self):
    self.received = None
    self._previous = {}

  def _handle(self, signum, frame):
    self.received = signal.Signals(signum).name
    for sig, handler in self._previous.items():  # a second signal stops at once
      signal.signal(sig, handler)
    log.warning("%s received: finishing the current step, then saving", self.received)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():  # signals only work there
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    return False


def train(state, step_fn, *, start_step: int, total_steps: int, log_metrics, checkpointer,
          save_every: int, log_every: int, desc: str, to_checkpoint=lambda s: s,
          checkpoint_meta=None, block_each_step: bool = False, postfix=("loss",),
          show_progress: bool = True):
  """Runs `state, metrics = step_fn(state, step)` for steps `start_step … total_steps-1`.

  Every `log_every` steps `log_metrics(step, {name: float})` (None: not logged). Saves
  `to_checkpoint(state)` every `save_every` steps and at the end (`checkpointer` None:
  never), never a state that followed a non-finite loss or gradient: each step's metrics
  are checked one step later (so the device keeps a step in flight) and always before a
  save."""
  checkpoint_meta = checkpoint_meta or {}
  pending = None  # (step number, metrics) not yet checked
  latest = (lambda: None) if checkpointer is None else checkpointer.latest_step

  def check(item):
    done, metrics = item
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    check_finite(done, values, latest())
    return values

  with StopSignals() as stop:
    bar = progress(total_steps, initial=start_step, desc=desc, enabled=show_progress)
    for step in range(start_step, total_steps):
      state, metrics = step_fn(state, step)
      if block_each_step:  # fake CPU devices deadlock with many steps in flight
        jax.block_until_ready(state)
      if pending is not None:
        check(pending)
      done = step + 1
      pending = (done, metrics)
      stopping = stop.received  # read once: a signal may arrive at any moment
      must_save = checkpointer is not None and (done % save_every == 0 or done == total_steps
                                                or stopping)
      if done % log_every == 0 or done == total_steps or must_save:
        values = check(pending)
        pending = None
        if done % log_every == 0 or done == total_steps:
          if log_metrics is not None:
            log_metrics(done, values)
          bar.set_postfix({k: f"{values[k]:.4f}" for k in postfix if k in values})
      if must_save:
        checkpointer.save(done, to_checkpoint(state), **checkpoint_meta)
      bar.update(1)
      if stopping:
        bar.close()
        if checkpointer is None:
          raise KeyboardInterrupt(f"Stopped by {stopping} after step {done}; nothing was saved "
                                  "(no checkpoint directory).")
        checkpointer.wait()
        raise Preempted(stopping, done, checkpointer.directory)
    bar.close()
    if pending is not None:
      check(pending)
    if checkpointer is not None:
      checkpointer.wait()
  return state
