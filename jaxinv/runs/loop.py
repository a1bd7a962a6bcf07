"""The training loop both run kinds share: periodic checkpoints, a finiteness check
on every step, metrics and progress, and preemption by SIGTERM/SIGINT.

Exit convention (the CLI maps `Preempted` to it): a run stopped by SIGTERM or
SIGINT finishes its current step, saves a checkpoint at that step and exits with
`EXIT_PREEMPTED` (75, sysexits' EX_TEMPFAIL: "try again"). Rerunning the same
command resumes from that checkpoint.
"""

import logging
import signal
import threading

import jax

from jaxinv.runs.workdir import check_finite, progress

EXIT_PREEMPTED = 75
log = logging.getLogger(__name__)


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


def train(state, step_fn, *, start_step: int, total_steps: int, work, checkpointer, save_every: int,
          log_every: int, desc: str, to_checkpoint=lambda s: s, checkpoint_meta=None,
          block_each_step: bool = False, postfix=("loss",)):
  """Runs `state, metrics = step_fn(state, step)` for steps `start_step … total_steps-1`.

  Saves `to_checkpoint(state)` every `save_every` steps and at the end, never a state
  that followed a non-finite loss or gradient: each step's metrics are checked one
  step later (so the device keeps a step in flight) and always before a save."""
  checkpoint_meta = checkpoint_meta or {}
  pending = None  # (step number, metrics) not yet checked

  def check(item):
    done, metrics = item
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    check_finite(done, values, checkpointer.latest_step())
    return values

  with StopSignals() as stop:
    bar = progress(total_steps, initial=start_step, desc=desc)
    for step in range(start_step, total_steps):
      state, metrics = step_fn(state, step)
      if block_each_step:  # fake CPU devices deadlock with many steps in flight
        jax.block_until_ready(state)
      if pending is not None:
        check(pending)
      done = step + 1
      pending = (done, metrics)
      stopping = stop.received  # read once: a signal may arrive at any moment
      must_save = done % save_every == 0 or done == total_steps or stopping
      if done % log_every == 0 or done == total_steps or must_save:
        values = check(pending)
        pending = None
        if done % log_every == 0 or done == total_steps:
          work.log_metrics(done, values)
          bar.set_postfix({k: f"{values[k]:.4f}" for k in postfix if k in values})
      if must_save:
        checkpointer.save(done, to_checkpoint(state), **checkpoint_meta)
      bar.update(1)
      if stopping:
        checkpointer.wait()
        bar.close()
        raise Preempted(stopping, done, checkpointer.directory)
    bar.close()
    if pending is not None:
      check(pending)
    checkpointer.wait()
  return state
