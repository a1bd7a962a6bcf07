"""Device mesh and shardings for data-parallel steps.

One mesh axis, `data`: parameters and optimiser state are replicated, batches
are split along their leading axis. The same code runs on one device (a 1-device
mesh) and on many; `jax.jit` inserts the gradient all-reduce.
"""

import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec

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


def put_replicated(tree, mesh):
  return jax.device_put(tree, replicated(mesh))


def put_batch(tree, mesh):
  return jax.device_put(tree, data_sharded(mesh))
