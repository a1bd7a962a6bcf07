"""Local or cloud paths (`gs://bucket/run` on a TPU VM) for everything runs read and write.

Every file goes through `etils.epath` (as Orbax's checkpoints do), whose cloud backends are
TensorFlow's gfile or fsspec's (gcsfs for gs://). Builtin `open`, `np.save(path)` and
`Path.absolute()` would treat "gs://..." as a local folder named "gs:", so the helpers here
read and write bytes through epath instead.
"""

import io
import os

import numpy as np
from etils import epath

# fsspec's filesystem package per scheme, named in the error when it is missing.
_PACKAGES = {"gs": "gcsfs", "s3": "s3fs", "az": "adlfs"}


def path(value) -> epath.Path:
  return epath.Path(value)


def is_cloud(value) -> bool:
  """Whether `value` names a bucket (`scheme://...`) rather than a local path."""
  return "://" in os.fspath(value)


def absolute(value) -> str:
  """`value` as an absolute path string: a local path made absolute, a cloud path as it is."""
  return os.fspath(value) if is_cloud(value) else os.fspath(epath.Path(value).absolute())


def check_filesystem(value) -> None:
  """A clear error when `value` is a cloud path whose filesystem package is not installed
  (epath otherwise fails at the first file with an ImportError deep inside a run)."""
  if not is_cloud(value):
    return
  scheme = os.fspath(value).split("://", 1)[0]
  try:
    epath.Path(value).exists()
  except ImportError as err:
    package = _PACKAGES.get(scheme, "the fsspec filesystem for it")
    raise ValueError(f"{os.fspath(value)}: reading and writing {scheme}:// paths needs "
                     f"`pip install {package}` (or TensorFlow, whose gfile epath also uses); "
                     f"{err}") from err


def ensure_writable_dir(value) -> epath.Path:
  """Makes the folder and checks a file can be written there (before any compile)."""
  check_filesystem(value)
  folder = epath.Path(value)
  probe = folder / f".jaxinv_write_probe_{os.getpid()}"
  try:
    folder.mkdir(parents=True, exist_ok=True)
    probe.write_text("")
    probe.unlink()
  except OSError as err:
    reason = err.strerror or str(err)
    raise PermissionError(f"The workdir {folder} is not writable ({reason}); choose a "
                          "writable folder.") from err
  return folder


def save_npz(target, **arrays) -> None:
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  epath.Path(target).write_bytes(buffer.getvalue())


def load_npz(source) -> dict:
  """All arrays of an .npz file (no pickles), read through epath."""
  with np.load(io.BytesIO(epath.Path(source).read_bytes()), allow_pickle=False) as f:
    return {name: f[name] for name in f.files}


def save_npy(target, array) -> None:
  buffer = io.BytesIO()
  np.save(buffer, array)
  epath.Path(target).write_bytes(buffer.getvalue())


def load_npy(source) -> np.ndarray:
  return np.load(io.BytesIO(epath.Path(source).read_bytes()), allow_pickle=False)


def save_figure(figure, target, dpi: int = 100) -> None:
  """A matplotlib figure written as bytes (the format from the file's suffix)."""
  target = epath.Path(target)
  buffer = io.BytesIO()
  figure.savefig(buffer, format=target.suffix.lstrip(".") or "png", dpi=dpi)
  target.write_bytes(buffer.getvalue())
