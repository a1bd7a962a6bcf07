"""Shared test setup: the real data files and XLA flags for fake CPU devices."""

import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

REPO = Path(__file__).resolve().parents[1]
# CI and the README set JAXINV_DATA_DIR=../shared/data; default to it here too.
os.environ.setdefault("JAXINV_DATA_DIR", str((REPO.parent / "shared" / "data").resolve()))

# Collectives on fake CPU devices can hang; make a hang fail fast, not at CI's limit.
SHORT_COLLECTIVE_TIMEOUTS = ("--xla_cpu_collective_call_terminate_timeout_seconds=120 "
                             "--xla_cpu_collective_call_warn_stuck_timeout_seconds=20")


# The tests compile the same programs again and again (a killed run and its
# resumption, 1- and N-device runs, the tiny configs' steps in many tests): share JAX's
# persistent compilation cache between this process and the subprocesses it launches.
# Every program is cached, not only those over JAX's default 1 s of compile time: most
# of the tiny configs' compiles are shorter, and together they were most of a CLI run.
# A cached executable is the same program, so results are unchanged.
# pytest-xdist's workers inherit the environment of the process that started them, so
# they find and share the folders made there; only the process that made them removes them.
OWNED_TEMP_DIRS = []


def _shared_temp_dir(variable: str, prefix: str) -> str:
  if variable not in os.environ:
    os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
    OWNED_TEMP_DIRS.append(os.environ[variable])
  return os.environ[variable]


COMPILATION_CACHE = _shared_temp_dir("JAXINV_TEST_XLA_CACHE", "jaxinv-test-xla-cache-")
os.environ["JAX_COMPILATION_CACHE_DIR"] = COMPILATION_CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
jax.config.update("jax_compilation_cache_dir", COMPILATION_CACHE)  # in case jax read its
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # environment already


# One TFDS folder for the whole session (this process and its subprocesses): each IDX
# dataset is prepared into it once, and never into the user's ~/tensorflow_datasets.
PREPARED_TFDS = _shared_temp_dir("JAXINV_TEST_TFDS", "jaxinv-test-tfds-")
os.environ.setdefault("JAXINV_TFDS_DIR", PREPARED_TFDS)


def pytest_sessionfinish(session, exitstatus):
  for path in OWNED_TEMP_DIRS:
    shutil.rmtree(path, ignore_errors=True)


def fake_devices_env(count: int) -> dict:
  env = dict(os.environ)  # carries the compilation cache settings above
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={count} {SHORT_COLLECTIVE_TIMEOUTS}"
  env["JAX_PLATFORMS"] = "cpu"
  return env


@pytest.fixture(scope="session")
def tfds_dir() -> Path:
  """The session's TFDS dir, so each dataset is prepared only once."""
  return Path(PREPARED_TFDS)


@pytest.fixture(scope="session")
def data_dir() -> Path:
  path = Path(os.environ["JAXINV_DATA_DIR"])
  assert (path / "mnist").is_dir(), f"real data files expected under {path}"
  return path


@pytest.fixture
def cpu_forms():
  """jaxinv.cpu switched on for one test (the hand-made convolution forms with impl="auto"
  on a CPU; off again after). Library code leaves it off by default."""
  import jaxinv.cpu
  with jaxinv.cpu.switched(True):
    yield
