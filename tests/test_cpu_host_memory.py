"""jaxinv.cpu.host_memory: glibc keeps freed memory, so XLA:CPU's large buffers come from the
reused heap instead of fresh `mmap`s (checked through glibc's own `mallinfo2` counters);
or the process restarts itself with glibc's huge-page tunable, and XLA's buffers then sit
in transparent huge pages (checked in the kernel's /proc/self/smaps_rollup)."""

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from jaxinv import cli
from jaxinv.cpu import host_memory

on_glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                              reason="mallopt/mallinfo2 are glibc's")

# Runs in a fresh process (the setting must come before JAX's backend starts). Prints
# where a 64 MB XLA output buffer came from while it is alive: bytes in mmapped chunks
# (hblkhd) and in the main arena (arena), and the same after it is freed.
_PROBE = textwrap.dedent("""
    import ctypes, json, os, sys
    import jax, jax.numpy as jnp
    from jaxinv.cpu import host_memory

    class MallInfo2(ctypes.Structure):
      _fields_ = [(name, ctypes.c_size_t) for name in
                  ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                   "uordblks", "fordblks", "keepcost")]
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    kept = host_memory.keep_freed_memory() if sys.argv[1] == "keep" else False
    x = jnp.ones(16 * 2**20, jnp.float32)  # 64 MB
    double = jax.jit(lambda x: x * 2.0)
    y = double(x).block_until_ready()
    held = libc.mallinfo2()
    del y
    freed = libc.mallinfo2()
    print(json.dumps(dict(kept=kept, mmapped_held=held.hblkhd, arena_held=held.arena,
                          arena_freed=freed.arena)))
""")

MB = 2**20


def _probe(mode):
  import json
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  env.pop("XLA_FLAGS", None)
  out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                       env=env, timeout=300)
  assert out.returncode == 0, out.stderr
  return json.loads(out.stdout.strip().splitlines()[-1])


@on_glibc
def test_kept_memory_serves_xla_buffers_from_the_heap():
  default, kept = _probe("default"), _probe("keep")
  # Left alone, glibc maps the 64 MB input and output buffers (and more) with mmap ...
  assert not default["kept"]
  assert default["mmapped_held"] >= 128 * MB
  # ... kept, it never maps a chunk: both come from the main arena, which keeps them.
  assert kept["kept"]
  assert kept["mmapped_held"] < 16 * MB  # only what Python mapped before the call
  assert kept["arena_held"] >= 128 * MB
  assert kept["arena_freed"] == kept["arena_held"]  # not trimmed back to the system


@on_glibc
def test_too_late_warns_and_does_nothing():
  script = ("import warnings, jax\nfrom jaxinv.cpu import host_memory\njax.devices()\n"
            "with warnings.catch_warnings(record=True) as seen:\n"
            "  warnings.simplefilter('always')\n"
            "  print(host_memory.keep_freed_memory(), [str(w.message) for w in seen])\n"
            "print(host_memory.keep_freed_memory(warn_if_late=False))\n")
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  first, second = out.stdout.strip().splitlines()[-2:]
  assert first.startswith("False") and "before the first JAX computation" in first
  assert second == "False"


def test_a_non_cpu_platform_is_left_alone():
  script = ("from jaxinv.cpu import host_memory\n"
            "print(host_memory.runs_on_host(), host_memory.keep_freed_memory())\n")
  for platforms, expected in (("cuda,cpu", "False False"), ("cpu", "True True")):
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "JAX_PLATFORMS": platforms})
    assert out.returncode == 0, out.stderr
    if platforms == "cpu" and not (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"):
      expected = "True False"
    assert out.stdout.strip().splitlines()[-1] == expected


def test_environment_variable(monkeypatch):
  monkeypatch.delenv(host_memory.ENVIRONMENT_VARIABLE, raising=False)
  assert host_memory.configure_from_environment() is False  # unset: huge pages, set at restart
  monkeypatch.setenv(host_memory.ENVIRONMENT_VARIABLE, "default")
  assert host_memory.configure_from_environment() is False
  monkeypatch.setenv(host_memory.ENVIRONMENT_VARIABLE, "always")
  with pytest.raises(ValueError, match="JAXINV_HOST_MEMORY='always' is not one of"):
    host_memory.configure_from_environment()


@pytest.mark.parametrize("entry", ["main", "command"])  # in-process, and the console script
def test_cli_reports_a_bad_setting(entry, monkeypatch, tmp_path, capsys):
  monkeypatch.setenv(host_memory.ENVIRONMENT_VARIABLE, "sometimes")
  code = getattr(cli, entry)(["sample", "--workdir", str(tmp_path), "--num-per-class", "1",
                              "--out", str(tmp_path / "out.npz")])
  assert code == 2
  assert ("JAXINV_HOST_MEMORY='sometimes' is not one of ('hugepages', 'keep', 'default')"
          in capsys.readouterr().err)


# Run as a script file (the restart re-runs the same command line). Prints once, after
# the restart, where a 64 MB XLA output buffer's pages are.
_RESTART_PROBE = textwrap.dedent("""
    import json, os, re, sys
    from jaxinv.cpu import host_memory
    sys.stderr.write("started\\n")
    host_memory.restart_with_huge_pages()
    import jax, jax.numpy as jnp
    y = (jnp.ones(16 * 2**20, jnp.float32) * 2.0).block_until_ready()
    rollup = open("/proc/self/smaps_rollup").read()
    huge_kb = int(re.search(r"AnonHugePages:\\s+(\\d+) kB", rollup).group(1))
    print(json.dumps(dict(pid=os.getpid(), tunables=os.environ.get("GLIBC_TUNABLES"),
                          huge_kb=huge_kb, argv=sys.argv[1:])))
""")


def _restart_probe(tmp_path, mode):
  import json
  script = tmp_path / "probe.py"
  script.write_text(_RESTART_PROBE)
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "GLIBC_TUNABLES": "glibc.malloc.check=0"}
  env.pop("XLA_FLAGS", None)
  if mode is None:
    env.pop(host_memory.ENVIRONMENT_VARIABLE, None)
  else:
    env[host_memory.ENVIRONMENT_VARIABLE] = mode
  out = subprocess.run([sys.executable, str(script), "--flag", "value"], capture_output=True,
                       text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr
  lines = out.stdout.strip().splitlines()
  assert len(lines) == 1, out.stdout  # the first process printed nothing before it restarted
  return json.loads(lines[0]), out.stderr.count("started")


@on_glibc
def test_restart_puts_xla_buffers_in_huge_pages(tmp_path):
  report, starts = _restart_probe(tmp_path, None)
  if not host_memory.huge_pages_available():
    assert starts == 1 and report["tunables"] == "glibc.malloc.check=0"
    pytest.skip("no transparent huge pages here (or glibc < 2.35): nothing to restart for")
  assert starts == 2  # restarted once, not again
  assert report["tunables"] == ":".join(("glibc.malloc.check=0", *host_memory.HUGE_PAGES_TUNABLES))
  assert report["argv"] == ["--flag", "value"]
  assert report["huge_kb"] >= 64 * 1024  # the 64 MB input and output buffers, at least one
  for mode in ("default", "keep"):
    report, starts = _restart_probe(tmp_path, mode)
    assert starts == 1 and report["tunables"] == "glibc.malloc.check=0"
