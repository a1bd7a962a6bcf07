"""Keep freed host memory in the process, so XLA:CPU's buffers stop costing page faults.

XLA:CPU allocates every execution's buffers (outputs and the temporary buffer of the
whole program) with `malloc` from its worker threads. glibc gives each such thread its
own arena, whose heaps cannot hold a chunk of more than 64 MB, so large buffers are
`mmap`ed and handed back with `munmap` when freed: every step touches fresh pages and
pays a page fault per 4 KiB of them. Measured on the project's 2-core AMD EPYC VM
(jax 0.10.2): an elementwise `x * 2` over 64 MB ran at 3.2–3.6 GB/s, and at 12–17 GB/s
once freed memory was kept (`numpy.copyto` into an existing array: 10 GB/s); the MNIST
classifier step at batch 256 went from 183 to 130 ms (`benchmarks/step_speed.py
--host-memory default|keep`, README "Speed").

`keep_freed_memory()` tells glibc (`mallopt`) to use one arena (the main one, which
grows with `brk` and can hold any size), never to `mmap` a chunk, and not to return
freed memory at the top of the heap to the system below 2 GiB: a buffer freed after
one step is reused, already paged in, by the next. Nothing computed changes (the same
runs gave bit-identical accuracies). The costs: the process keeps its peak host memory
until it exits, and all threads share one arena — which made the whole `configs/mnist.py:fast`
run (batch 32, 600 steps, `benchmarks/time_to_target.py`) *slower*: 54–58 s against
45–50 s left alone (same VM, runs interleaved). Leaving per-thread arenas but disabling
mmap, or glibc's transparent huge pages (`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`), gave
46 s. So it is opt-in: it pays where single buffers are tens of MB (batch 256 steps),
not for small batches.

It must run before JAX starts its CPU backend (the first computation or
`jax.devices()`): threads that already own an arena keep it. The `jaxinv` command calls
it on start when `JAXINV_HOST_MEMORY=keep`; it does nothing off Linux/glibc, when JAX is
set to a non-CPU platform first (`JAX_PLATFORMS`), or when a GPU/TPU plugin is
installed and no platform is set (there the host is not where the steps run).
"""

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import os
import pkgutil
import platform
import warnings

ENVIRONMENT_VARIABLE = "JAXINV_HOST_MEMORY"
MODES = ("keep", "default")

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_KEEP_BELOW_BYTES = 2**31 - 1  # mallopt takes an int


def _glibc():
  if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
    return None
  return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def backend_started() -> bool:
  from jax._src import xla_bridge  # no public query for "has a backend been created"
  return xla_bridge.backends_are_initialized()


def _accelerator_installed() -> bool:
  """A PJRT plugin (GPU, TPU, ...) is installed: JAX finds them as `jax_plugins`
  entry points or modules of the `jax_plugins` namespace package, TPUs through libtpu."""
  if importlib.metadata.entry_points(group="jax_plugins") or importlib.util.find_spec("libtpu"):
    return True
  try:
    import jax_plugins
  except ImportError:
    return False
  return any(True for _ in pkgutil.iter_modules(jax_plugins.__path__))


def runs_on_host() -> bool:
  """Whether JAX's default backend will be the CPU, judged without starting it."""
  import jax
  platforms = jax.config.jax_platforms
  if platforms:
    return platforms.split(",")[0].strip() == "cpu"
  return not _accelerator_installed()


def keep_freed_memory(warn_if_late: bool = True) -> bool:
  """Makes glibc keep freed memory for reuse (module docstring). Returns whether it did;
  does nothing (and warns, if `warn_if_late`) when JAX's backend has already started."""
  libc = _glibc()
  if libc is None or not runs_on_host():
    return False
  if backend_started():
    if warn_if_late:
      warnings.warn("jaxinv.host_memory.keep_freed_memory() has no effect once JAX's backend "
                    "has started (its threads already own their memory arenas); call it before "
                    "the first JAX computation or jax.devices().", stacklevel=2)
    return False
  return bool(libc.mallopt(_M_ARENA_MAX, 1) and libc.mallopt(_M_MMAP_MAX, 0)
              and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW_BYTES))


def configure_from_environment() -> bool:
  """`keep_freed_memory()` if JAXINV_HOST_MEMORY=keep (unset or "default": malloc is left
  alone); silent when JAX's backend has already started (`jaxinv.cli.main` called from a
  Python session)."""
  mode = os.environ.get(ENVIRONMENT_VARIABLE, "default").strip().lower()
  if mode not in MODES:
    raise ValueError(f"{ENVIRONMENT_VARIABLE}={os.environ[ENVIRONMENT_VARIABLE]!r} is not one of "
                     f"{MODES}; set {ENVIRONMENT_VARIABLE}=keep to keep freed memory, or unset it.")
  return keep_freed_memory(warn_if_late=False) if mode == "keep" else False
