"""Multi-process (multi-host) runs on JAX's own distributed runtime.

A run becomes multi-process when `config.distributed` is true or the environment
sets `JAXINV_DISTRIBUTED=1`. Then `jax.distributed.initialize()` is called before
anything touches a device:

- on Cloud TPU pods, Slurm and Open MPI it finds the coordinator and process ids
  itself;
- elsewhere set `JAXINV_COORDINATOR=host:port`, `JAXINV_NUM_PROCESSES=N` and
  `JAXINV_PROCESS_ID=i` (0 … N-1) for each process.

Every process runs the same command; the mesh spans every device of every
process; each process feeds only its slice of the global batch
(`jax.make_array_from_process_local_data`); only process 0 writes metrics,
figures and summaries; every process takes part in checkpointing (Orbax
coordinates the processes). On CPU the processes talk through gloo collectives.
"""

import logging
import os

import jax
import numpy as np

log = logging.getLogger(__name__)
_initialized = False


def requested(enabled: bool = False) -> bool:
  """`enabled` (a run's `distributed` field) or `JAXINV_DISTRIBUTED=1` in the environment."""
  flag = os.environ.get("JAXINV_DISTRIBUTED", "").lower() in ("1", "true", "yes")
  return flag or bool(enabled)


def initialize(enabled: bool = False) -> None:
  """Starts the distributed runtime once, if asked for; a no-op otherwise."""
  global _initialized
  if _initialized or not requested(enabled):
    return
  kwargs = {}
  if os.environ.get("JAXINV_COORDINATOR"):
    missing = [name for name in ("JAXINV_NUM_PROCESSES", "JAXINV_PROCESS_ID")
               if not os.environ.get(name)]
    if missing:
      raise ValueError(f"JAXINV_COORDINATOR is set but {missing} are not; set all three "
                       "(host:port, the process count, this process's id).")
    kwargs = dict(coordinator_address=os.environ["JAXINV_COORDINATOR"],
                  num_processes=int(os.environ["JAXINV_NUM_PROCESSES"]),
                  process_id=int(os.environ["JAXINV_PROCESS_ID"]))
  # CPU devices of different processes need a collectives backend (unused on GPU/TPU).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**kwargs)
  _initialized = True
  log.info("process %d of %d, %d local / %d global devices", jax.process_index(),
           jax.process_count(), jax.local_device_count(), jax.device_count())


def is_primary() -> bool:
  """Process 0 writes the files that only need writing once."""
  return jax.process_index() == 0


def local_slice(global_batch_size: int) -> slice:
  """This process's rows of a global batch (processes in index order)."""
  count = jax.process_count()
  if global_batch_size % count:
    raise ValueError(f"The batch size {global_batch_size} is not divisible by the {count} processes.")
  per_process = global_batch_size // count
  start = jax.process_index() * per_process
  return slice(start, start + per_process)


def to_host(tree):
  """Fully replicated global arrays → numpy on every process (no collective)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array)
                      else x, tree)
