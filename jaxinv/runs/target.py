"""The classifier a run inverts: a `jaxinv train-classifier` run (`init_from`) or a user's
own, returned by a factory (`classifier_fn = "package.module:factory"`)."""

import importlib
import importlib.util
from typing import Any, NamedTuple

from etils.epath import Path

from jaxinv import config as config_lib
from jaxinv import paths
from jaxinv.classifier import Classifier, from_linen
from jaxinv.runs import classifier as classifier_run


class Target(NamedTuple):
  classifier: Classifier  # apply_fn(params, images) -> (logits, {"features": ...})
  architecture: str  # jaxinv's model name ("cnn", "mlp", ...), or the factory's spec
  record: dict  # where it came from: {"path", "step"} or {"classifier_fn"}
  model: Any = None  # jaxinv's Linen module, for terms that rebuild it; None for a factory
  config: Any = None  # the classifier run's config; None for a factory


def load_factory(spec: str):
  """`package.module:name` or `path/to/file.py:name` → the object (a factory); errors
  name the fix."""
  module_name, _, attr = spec.rpartition(":")
  if not module_name or not attr:
    raise ValueError(f"classifier_fn={spec!r} must be 'package.module:factory' or "
                     "'path/to/file.py:factory' (a function with no arguments that returns a "
                     "jaxinv.Classifier or an (apply_fn, params) pair).")
  try:
    if module_name.endswith(".py"):
      path = Path(module_name)
      if not path.is_file():
        raise ImportError(f"no file {path}")
      file_spec = importlib.util.spec_from_file_location(path.stem, path)
      module = importlib.util.module_from_spec(file_spec)
      file_spec.loader.exec_module(module)
    else:
      module = importlib.import_module(module_name)
  except ImportError as err:
    raise ValueError(f"classifier_fn={spec!r}: cannot import {module_name!r} ({err}); put its "
                     "folder on PYTHONPATH or install its package.") from err
  if not hasattr(module, attr):
    raise ValueError(f"classifier_fn={spec!r}: module {module_name!r} has no {attr!r}.")
  return getattr(module, attr)


def from_factory(spec: str) -> Classifier:
  made = load_factory(spec)()
  if isinstance(made, Classifier):
    return made
  if isinstance(made, tuple) and len(made) == 2 and callable(made[0]):
    return Classifier(*made)
  raise ValueError(f"classifier_fn={spec!r} returned a {type(made).__name__}; it must return a "
                   "jaxinv.Classifier (jaxinv.from_linen / from_function / from_nnx) or an "
                   "(apply_fn, params) pair.")


def load(config, step: int | None = None) -> Target:
  """The classifier `config` names (its newest checkpoint, or `step` of a classifier run)."""
  if config.get("classifier_fn"):
    return Target(from_factory(config.classifier_fn), architecture=config.classifier_fn,
                  record={"classifier_fn": config.classifier_fn})
  model, variables, classifier_config, step = classifier_run.restore(config.init_from, step)
  # The frozen classifier runs in the inversion's compute dtype (its weights stay float32).
  model = model.clone(dtype=config_lib.compute_dtype(config))
  classifier = from_linen(model, variables, features=config.inversion.feature_layer)
  return Target(classifier, architecture=classifier_config.classifier.model,
                record={"path": str(Path(paths.absolute(config.init_from)) / "checkpoints"),
                        "step": int(step)},
                model=model, config=classifier_config)
