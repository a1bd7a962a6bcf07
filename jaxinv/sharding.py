"""Device mesh and shardings for data-parallel steps.

One mesh axis, `data`: parameters and optimiser state are replicated, batches
are split along their leading axis. The same code runs on one device (a 1-device
mesh) and on many; `jax.jit` inserts the gradient all-reduce.
"""

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from jaxinv import distributed

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1-D `data` mesh over the first `num_devices` devices (default: all)."""
  available = jax.devices()
  n = len(available) if not num_devices else num_devices
  if n > len(available):
    raise ValueError(
        f"num_devices={n} but only {len(available)} device(s) are visible; lower num_devices "
        "(0 means all) or expose more devices.")
  return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,), devices=available[:n])


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def data_sharded(mesh) -> NamedSharding:
  """Leading (batch) axis split over the `data` axis."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, mesh, field: str = "batch_size") -> None:
  n = mesh.shape[DATA_AXIS]
  if batch_size % n:
    raise ValueError(
        f"{field}={batch_size} is not divisible by the {n} devices of the data mesh; "
        f"use a multiple of {n} (for example {max(n, batch_size // n * n)}) or set num_devices.")


def put_replicated(tree, mesh, copy: bool = False):
  """The same value on every device; across processes every process passes the same value.
  `copy`: never the caller's own buffers (which a donating step would free)."""
  if jax.process_count() > 1:
    tree = distributed.to_host(tree)
  return jax.device_put(tree, replicated(mesh), may_alias=False if copy else None)


def put_batch(tree, mesh):
  """A batch split along its leading axis. With several processes each passes only its
  own rows (`distributed.local_slice`) and the global batch is assembled without copies."""
  sharding = data_sharded(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


# Initialisation runs once, but on XLA:CPU its program is slow to compile: every parameter's
# random draw is a fusion of its own that LLVM optimises for ~0.2 s (the tiny digits
# generator's state: 2.4 s; at optimisation level 0: 0.45 s). Its run time is negligible,
# so on CPU it is compiled unoptimised. The values can differ from an optimised build's in
# the last bit (no fused multiply-adds), identically on every run and device count.
_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def create_replicated(init_fn, mesh, *args):
  """`init_fn(*args)` computed under `jax.jit` with replicated outputs: parameters are
  created directly on every device of the mesh, never first on one device and copied."""
  jitted = jax.jit(init_fn, out_shardings=replicated(mesh))
  if jax.default_backend() != "cpu":
    return jitted(*args)
  return jitted.lower(*args).compile(compiler_options=_INIT_COMPILER_OPTIONS)(*args)
