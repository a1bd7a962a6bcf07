"""A fake gs:// for tests: etils.epath's backends mocked so gs://BUCKET/... lives in a local
folder (no network). Orbax's array data goes through TensorStore's own GCS driver, not epath,
so `orbax_local=True` also hands Orbax the local folder behind a gs:// checkpoint directory."""

import contextlib
import os

from etils.epath import testing as epath_testing

PREFIX = "gs://"


@contextlib.contextmanager
def fake_gcs(root, monkeypatch=None, orbax_local: bool = True):
  root = os.fspath(root).rstrip("/") + "/"

  def local(path):
    path = os.fspath(path)
    return root + path[len(PREFIX):] if path.startswith(PREFIX) else path

  def cloud(path):
    path = os.fspath(path)
    return PREFIX + path[len(root):] if path.startswith(root) else path

  def on_path(original, path, *args, **kwargs):
    return original(local(path), *args, **kwargs)

  def on_two(original, src, dst, *args, **kwargs):
    return original(local(src), local(dst), *args, **kwargs)

  # Results name gs:// paths only for gs:// queries (Orbax globs its own, local, folders).
  def glob(original, pattern):
    back = cloud if os.fspath(pattern).startswith(PREFIX) else os.fspath
    return [back(p) for p in original(local(pattern))]

  def walk(original, top, **kwargs):
    back = cloud if os.fspath(top).startswith(PREFIX) else os.fspath
    for folder, dirs, files in original(local(top), **kwargs):
      yield back(folder), dirs, files

  with epath_testing.mock_epath(
      open=on_path, exists=on_path, isdir=on_path, listdir=on_path, makedirs=on_path, mkdir=on_path,
      remove=on_path, rmtree=on_path, stat=on_path, copy=on_two, rename=on_two, replace=on_two,
      glob=glob, walk=walk):
    if orbax_local and monkeypatch is not None:
      from jaxinv import checkpoint
      manager = checkpoint.ocp.CheckpointManager
      monkeypatch.setattr(checkpoint.ocp, "CheckpointManager",
                          lambda directory, *a, **k: manager(local(directory), *a, **k))
    yield local
