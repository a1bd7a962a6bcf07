"""Host-memory settings that stop XLA:CPU's large buffers from costing page faults.

XLA:CPU mallocs each step's large buffers from its worker threads; glibc `mmap`s and
unmaps them every step, paying a page fault per 4 KiB. `JAXINV_HOST_MEMORY` picks a remedy:
`hugepages` (unset: this one, where available) restarts the process (`os.execve`, same pid)
with glibc tunables for transparent huge pages and fewer returned buffers
(`restart_with_huge_pages`, Linux with glibc ≥ 2.35); `keep` makes glibc keep freed memory in
one arena (`keep_freed_memory`, before JAX's backend starts); `default` changes nothing.
Nothing computed changes; off a CPU backend nothing is done. Only `jaxinv.cpu.enable()` and the
`jaxinv` command call these. Measurements: docs/performance-cpu.md.
"""

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import os
import pkgutil
import platform
import sys
import warnings

ENVIRONMENT_VARIABLE = "JAXINV_HOST_MEMORY"
MODES = ("hugepages", "keep", "default")
_KEEP_BELOW_BYTES = 2**31 - 1  # mallopt takes an int
# Transparent huge pages for what malloc maps; no `mmap`ed chunks that fit an arena's heap
# (larger ones still are: module docstring) and no trimming below 2 GiB, so fewer buffers
# go back to the kernel between steps.
HUGE_PAGES_TUNABLES = ("glibc.malloc.hugetlb=1", "glibc.malloc.mmap_max=0",
                       f"glibc.malloc.trim_threshold={_KEEP_BELOW_BYTES}")
_THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


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
  return _platforms_say_host(jax.config.jax_platforms)


def _platforms_say_host(platforms) -> bool:
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
      warnings.warn("jaxinv.cpu.host_memory.keep_freed_memory() has no effect once JAX's backend "
                    "has started (its threads already own their memory arenas); call it before "
                    "the first JAX computation or jax.devices().", stacklevel=2)
    return False
  return bool(libc.mallopt(_M_ARENA_MAX, 1) and libc.mallopt(_M_MMAP_MAX, 0)
              and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW_BYTES))


def _mode() -> str:
  mode = os.environ.get(ENVIRONMENT_VARIABLE, "hugepages").strip().lower()
  if mode not in MODES:
    raise ValueError(f"{ENVIRONMENT_VARIABLE}={os.environ[ENVIRONMENT_VARIABLE]!r} is not one of "
                     f"{MODES}; unset it for huge pages, or set keep or default.")
  return mode


def huge_pages_on() -> bool:
  """Whether this process started with the huge-page tunables."""
  return set(HUGE_PAGES_TUNABLES) <= set(os.environ.get("GLIBC_TUNABLES", "").split(":"))


def huge_pages_available() -> bool:
  """Linux with glibc ≥ 2.35 (the tunable's first release), the kernel's transparent huge
  pages not `never`, and a CPU backend (judged from JAX_PLATFORMS without importing JAX)."""
  name, version = platform.libc_ver()
  if platform.system() != "Linux" or name != "glibc":
    return False
  if tuple(int(part) for part in version.split(".")[:2]) < (2, 35):
    return False
  try:
    with open(_THP_SETTING) as setting:
      if "[never]" in setting.read():
        return False
  except OSError:
    return False
  return _platforms_say_host(os.environ.get("JAX_PLATFORMS", ""))


def restart_with_huge_pages() -> None:
  """Replaces this process by the same command line with HUGE_PAGES_TUNABLES added to
  GLIBC_TUNABLES, unless JAXINV_HOST_MEMORY says otherwise, huge pages are unavailable
  or already on, or GLIBC_TUNABLES already sets glibc.malloc.hugetlb (the user's choice
  stands); then it returns. Call it first thing in an entry point: anything the
  process did before is lost. Output already buffered is flushed first."""
  tunables = os.environ.get("GLIBC_TUNABLES", "")
  if (_mode() != "hugepages" or "glibc.malloc.hugetlb" in tunables
      or not huge_pages_available()):
    return
  with_ours = ":".join(filter(None, (tunables, *HUGE_PAGES_TUNABLES)))
  environment = {**os.environ, "GLIBC_TUNABLES": with_ours}
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)


def configure_from_environment() -> bool:
  """`keep_freed_memory()` if JAXINV_HOST_MEMORY=keep; huge pages come from
  `restart_with_huge_pages()` at the command's start, and "default" leaves malloc alone.
  Silent when JAX's backend has already started (`jaxinv.cli.main` called from a Python
  session). Returns whether it changed malloc's settings."""
  return keep_freed_memory(warn_if_late=False) if _mode() == "keep" else False
