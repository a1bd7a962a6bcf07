"""Host-memory settings that stop XLA:CPU's large buffers from costing page faults.

XLA:CPU allocates every execution's buffers (outputs and the temporary buffer of the
whole program) with `malloc` from its worker threads. glibc gives each such thread its
own arena, whose heaps cannot hold a chunk of more than 64 MB, so large buffers are
`mmap`ed and handed back with `munmap` when freed: every step touches fresh pages and
pays a page fault per 4 KiB of them. Measured on the project's 2-core AMD EPYC VM
(jax 0.10.2): an elementwise `x * 2` over 64 MB ran at 3.2–3.6 GB/s, and at 12–17 GB/s
once freed memory was kept (`numpy.copyto` into an existing array: 10 GB/s).

Two remedies, chosen with `JAXINV_HOST_MEMORY` (the `jaxinv` command reads it):

* `hugepages` (unset: this one, where available) — three glibc tunables
  (`HUGE_PAGES_TUNABLES`): `hugetlb=1`, malloc asks for transparent huge pages (`madvise`)
  on what it maps, so a fresh 64 MB buffer costs 32 faults instead of 16 384;
  `mmap_max=0` and `trim_threshold` 2 GiB, so fewer buffers go back to the kernel between
  steps (a thread arena's 64 MB heaps still do when wholly free; the process keeps up to
  2 GiB of freed memory at the top of its main heap). A chunk larger than a thread
  arena's 64 MB heap is still `mmap`ed, whatever `mmap_max` says (glibc's fallback when
  no heap can hold it), and unmapped when freed: `strace` of the paper generator's step at
  batch 256 showed its 1.13 GB temporary buffer and five 80–156 MB buffers mapped and
  unmapped by XLA's worker threads every step (546 huge-page faults per step; session 17
  tried `arena_max` 1, 2 and 4 and `top_pad` 64 MB against that and the small generator's
  heap churn: slower or within noise). Tunables are read when a
  process starts, so `restart_with_huge_pages()` replaces the starting process (`os.execve`,
  same process id) by the same command line with `GLIBC_TUNABLES` set; it needs Linux,
  glibc ≥ 2.35 and the kernel's transparent huge pages in `madvise` or `always` mode.
  Session 16, Zen 5 VM, Eigen convolutions, two rounds of alternated processes, ms/step
  left alone → with the tunables: MNIST classifier at batch 256 69–70 → 54–58; inversion
  steps, small generator 44–46 → 35–37 (batch 64) and 187–188 → 147–167 (256), light
  48–58 → 39–45 (64), fast 23–24 → 17–19 (64), paper 435–447 → 419–423 (64) but
  1771–1790 → 1891–1919 (256: 6–8 % slower, its 1.1 GB of fresh buffers per step cost
  more kernel time in huge pages); fast at batch 32 and the batch-64 classifier unchanged.
  `hugetlb=1` alone was erratic (small at batch 64: 53 and 64 ms in two rounds), and
  `mmap_max`/`trim_threshold` alone gained at batch 64 only (small 33–41, light 36–37).
* `keep` — `keep_freed_memory()` tells glibc (`mallopt`) to use one arena (the main one,
  which grows with `brk` and can hold any size), never to `mmap` a chunk, and not to
  return freed memory at the top of the heap to the system below 2 GiB: a buffer freed
  after one step is reused, already paged in, by the next. The process keeps its peak
  host memory until it exits, and all threads share one arena — which made small batches
  *slower* (the whole `configs/mnist.py:fast` run, batch 32: 54–58 s against 45–50 s;
  session 16: fast generator at batch 64 17.7 → 34.7 ms) while the batch-256 classifier
  step gained (183 → 130 ms in session 13). It must run before JAX starts its CPU backend.
* `default` — glibc's own settings, nothing changed.

Nothing computed changes in any mode. The two remedies do nothing off Linux/glibc, when JAX is set
to a non-CPU platform first (`JAX_PLATFORMS`), or when a GPU/TPU plugin is installed and no
platform is set (there the host is not where the steps run).
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
      warnings.warn("jaxinv.host_memory.keep_freed_memory() has no effect once JAX's backend "
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
