"""Any trained classifier as one pair `(apply_fn, params)`.

`apply_fn(params, images) -> (logits, {"features": [B, D]})` takes the generator's
images (NHWC, float32, in [-1, 1]) and runs the classifier in inference mode: dropout
off, batch norm on its running statistics, nothing mutated. The adapters below build
that pair from a Flax Linen module, a Flax NNX module or a plain function, and map the
generator's images to the input the classifier expects (value range, mean/std
normalisation, channel layout, dtype).
"""

import inspect
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

FEATURES = "features"  # the aux key the diversity losses read
# Keyword arguments that switch a module between training and inference, with their
# inference values.
_INFERENCE_KWARGS = {"train": False, "training": False, "is_training": False,
                     "deterministic": True, "use_running_average": True}


class Classifier(NamedTuple):
  """A frozen classifier: `apply_fn(params, images) -> (logits, {"features": ...})`."""

  apply_fn: Callable
  params: Any


class InputSpec(NamedTuple):
  """What the classifier expects, given the generator's NHWC images in [-1, 1].

  `value_range` is the pixel range before normalisation, e.g. `(0, 1)` or `(0, 255)`;
  `mean` / `std` (one value or one per channel) are then applied as `(x - mean) / std`
  (torchvision's `Normalize`); `layout` is "NHWC" or "NCHW"; `dtype` the input dtype."""

  value_range: tuple[float, float] = (-1.0, 1.0)
  mean: Sequence[float] | float | None = None
  std: Sequence[float] | float | None = None
  layout: str = "NHWC"
  dtype: Any = jnp.float32

  def is_identity(self) -> bool:
    return (tuple(self.value_range) == (-1.0, 1.0) and self.mean is None and self.std is None
            and self.layout == "NHWC" and jnp.dtype(self.dtype) == jnp.float32)


def input_transform(spec: InputSpec, channels: int | None = None) -> Callable:
  """`images -> classifier input` for `spec`; `channels` checks per-channel mean/std."""
  if spec.layout not in ("NHWC", "NCHW"):
    raise ValueError(f"layout={spec.layout!r} is not a channel layout; use 'NHWC' (Flax) or "
                     "'NCHW' (models ported from PyTorch).")
  low, high = (float(v) for v in spec.value_range)
  if not high > low:
    raise ValueError(f"value_range={tuple(spec.value_range)} must be (low, high) with low < high, "
                     "e.g. (0, 1) or (0, 255).")
  if (spec.mean is None) != (spec.std is None):
    raise ValueError("Give both mean and std (normalisation (x - mean) / std) or neither.")
  mean = std = None
  if spec.mean is not None:
    mean, std = (np.atleast_1d(np.asarray(v, np.float32)) for v in (spec.mean, spec.std))
    for name, v in (("mean", mean), ("std", std)):
      if v.ndim != 1 or (channels is not None and v.size not in (1, channels)):
        raise ValueError(f"{name} has {v.size} values but the images have {channels} channel(s); "
                         f"give one value or {channels}.")
    if np.any(std <= 0):
      raise ValueError(f"std must be positive, got {std.tolist()}.")
  if spec.is_identity():
    return lambda images: images

  def transform(images):
    x = low + (images + 1.0) * (0.5 * (high - low))
    if mean is not None:
      x = (x - mean) / std
    if spec.layout == "NCHW":
      x = jnp.transpose(x, (0, 3, 1, 2))
    return x.astype(spec.dtype)

  return transform


def _inference_mode(next_fun, args, kwargs, context):
  """Linen interceptor: dropout off and batch norm on running statistics, however the
  module was written (a `train` field, a hard-coded flag, or no switch at all)."""
  if context.method_name == "__call__":
    if isinstance(context.module, nn.Dropout):
      return args[0] if args else kwargs["inputs"]
    if isinstance(context.module, nn.BatchNorm):
      if context.module.use_running_average is None:
        kwargs = {**kwargs, "use_running_average": True}
      else:  # set in the constructor: Flax refuses it at call time too. This bound copy
        # belongs to this one `apply`, so changing it changes nothing outside.
        object.__setattr__(context.module, "use_running_average", True)
        kwargs = {k: v for k, v in kwargs.items() if k != "use_running_average"}
  return next_fun(*args, **kwargs)


class _LastDenseInput:
  """Linen interceptor recording the input of the last `nn.Dense` called."""

  def __init__(self):
    self.value = None

  def __call__(self, next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Dense) and context.method_name == "__call__":
      self.value = args[0] if args else kwargs["inputs"]
    return next_fun(*args, **kwargs)


def _call_kwargs(fn: Callable) -> dict:
  """The inference values of the mode arguments `fn` accepts."""
  try:
    names = inspect.signature(fn).parameters
  except (TypeError, ValueError):
    return {}
  return {name: value for name, value in _INFERENCE_KWARGS.items() if name in names}


def _split_output(out):
  """`(logits, returned_features)`: a model returns logits, `(logits, features)` or
  `(logits, {name: array})`."""
  if isinstance(out, (tuple, list)):
    if len(out) != 2:
      raise ValueError(f"The classifier returned a {type(out).__name__} of {len(out)} items; return "
                       "logits, (logits, features) or (logits, {name: features}).")
    return out[0], out[1]
  return out, None


def _pick_returned(returned):
  """The features a model returned: the array, or from a dict its "features" or
  "penultimate" entry or its only entry (None when it returned none)."""
  if returned is None:
    return None
  if isinstance(returned, dict):
    if FEATURES in returned:
      return returned[FEATURES]
    if "penultimate" in returned:
      return returned["penultimate"]
    if len(returned) == 1:
      return next(iter(returned.values()))
    raise ValueError(f"The classifier returns features {sorted(returned)}; pick one with "
                     "features=NAME.")
  return returned


def from_linen(module: nn.Module, variables, *, features: str | None = None,
               inputs: InputSpec = InputSpec(), method: str | None = None) -> Classifier:
  """A Flax Linen classifier with its variables (`{"params": ..., "batch_stats": ...}`).

  The module may return logits, `(logits, features)` or `(logits, {name: features})`,
  and may take a `train` / `deterministic` / `use_running_average` argument or none;
  it always runs in inference mode (dropout off, batch statistics frozen).

  `features` picks the features of the cosine and orthogonality losses: a key of the
  returned dict, or a module path such as `"Dense_1"` or `"backbone/pool"` (that
  module's output, read with `capture_intermediates`). Default: the features the
  module returns, else the input of the last dense layer."""
  if not isinstance(module, nn.Module):
    raise TypeError(f"from_linen takes a flax.linen Module, got {type(module).__name__}; use "
                    "from_function for a pure function or from_nnx for an NNX module.")
  if "params" not in variables:
    raise ValueError(f"variables must hold a 'params' collection (module.init's result); got "
                     f"collections {sorted(variables)}.")
  method_fn = getattr(type(module), method or "__call__")
  mode = _call_kwargs(method_fn)
  to_input = input_transform(inputs)
  path = None if features is None else tuple(p for p in features.split("/") if p)

  def apply_fn(params, images):
    x = to_input(images)
    last_dense = _LastDenseInput()
    with nn.intercept_methods(last_dense), nn.intercept_methods(_inference_mode):
      if path is None:
        out, captured = module.apply(params, x, method=method, **mode), None
      else:  # records only the named module's output (nothing when no module has that path)
        out, state = module.apply(
            params, x, method=method, mutable=["intermediates"], **mode,
            capture_intermediates=lambda mdl, name: name == "__call__" and tuple(mdl.path) == path)
        captured = _intermediate(state.get("intermediates", {}), path)
    logits, returned = _split_output(out)
    if features is not None and isinstance(returned, dict) and features in returned:
      feats = returned[features]
    elif features is not None:
      if captured is None:
        raise ValueError(f"features={features!r} is neither a feature the classifier returns nor "
                         f"one of its module paths: {', '.join(_all_paths(params, x)) or '(none)'}.")
      feats = captured
    else:
      feats = _pick_returned(returned)
      feats = last_dense.value if feats is None else feats
    if feats is None:
      raise ValueError("The classifier returns no features and has no nn.Dense layer; pass "
                       "features=MODULE_PATH or return (logits, features).")
    return logits, {FEATURES: feats.reshape(feats.shape[0], -1)}

  def _all_paths(params, x):
    with nn.intercept_methods(_inference_mode):
      _, state = module.apply(params, x, method=method, capture_intermediates=True,
                              mutable=["intermediates"], **mode)
    return module_paths(state["intermediates"])

  apply_fn.input_spec = inputs  # for `check`, which knows the channel count
  return Classifier(apply_fn, variables)


def _intermediate(intermediates, path):
  """The recorded output at `path`, or None."""
  node = intermediates
  for part in path:
    if not hasattr(node, "get") or part not in node:
      return None
    node = node[part]
  return node["__call__"][0] if "__call__" in node else None


def module_paths(intermediates) -> list[str]:
  """Every `a/b/c` path with a recorded `__call__` output, in sorted order."""
  found = []

  def walk(node, prefix):
    for key, value in node.items():
      if key == "__call__":
        if prefix:
          found.append("/".join(prefix))
      elif isinstance(value, dict):
        walk(value, prefix + [key])

  walk(dict(intermediates), [])
  return sorted(found)


def from_function(fn: Callable, params, *, inputs: InputSpec = InputSpec()) -> Classifier:
  """A pure function `fn(params, images) -> logits` or `-> (logits, features)`.

  Without returned features the logits themselves are the diversity losses' features."""
  if not callable(fn):
    raise TypeError(f"from_function takes a callable fn(params, images), got {type(fn).__name__}.")
  to_input = input_transform(inputs)

  def apply_fn(params, images):
    logits, returned = _split_output(fn(params, to_input(images)))
    if jnp.ndim(logits) != 2:
      raise ValueError(f"The classifier returns logits of shape {jnp.shape(logits)}; it must return "
                       "[batch, num_classes].")
    feats = _pick_returned(returned)
    feats = logits if feats is None else feats
    return logits, {FEATURES: feats.reshape(feats.shape[0], -1)}

  apply_fn.input_spec = inputs
  return Classifier(apply_fn, params)


def from_nnx(model, *, features: Callable | None = None, inputs: InputSpec = InputSpec()) -> Classifier:
  """A Flax NNX module, split into graph definition and state.

  It runs in evaluation mode (`model.eval()`: dropout off, batch norm on running
  statistics). Features: those the model returns, else the input of the last
  `nnx.Linear` called, or `features(model, images) -> [B, D]` when given."""
  from flax import nnx
  if not isinstance(model, nnx.Module):
    raise TypeError(f"from_nnx takes a flax.nnx Module, got {type(model).__name__}.")
  model.eval()
  graphdef, state = nnx.split(model)
  to_input = input_transform(inputs)

  def apply_fn(state, images):
    live = nnx.merge(graphdef, state)
    x = to_input(images)
    recorded = []
    linears = [m for _, m in live.iter_modules() if isinstance(m, nnx.Linear)]
    for linear in linears:  # this merged copy is private to this call
      linear.__class__ = _recording_linear(type(linear), recorded)
    logits, returned = _split_output(live(x))
    feats = _pick_returned(returned)
    if features is not None:
      feats = features(live, x)
    if feats is None:
      feats = recorded[-1] if recorded else logits
    return logits, {FEATURES: feats.reshape(feats.shape[0], -1)}

  apply_fn.input_spec = inputs
  return Classifier(apply_fn, state)


def _recording_linear(cls, recorded: list):
  class Recording(cls):
    def __call__(self, inputs, *args, **kwargs):
      recorded.append(inputs)
      return super().__call__(inputs, *args, **kwargs)
  return Recording


def check(classifier: Classifier, image_shape: Sequence[int], num_classes: int | None = None) -> int:
  """Checks `classifier` on a probe batch before anything else compiles; returns its
  class count. Wrong shapes, a missing feature path or non-finite logits are a
  `ValueError` naming the problem and the fix."""
  image_shape = tuple(int(d) for d in image_shape)
  if len(image_shape) != 3:
    raise ValueError(f"image_shape={image_shape} must be (height, width, channels).")
  spec = getattr(classifier.apply_fn, "input_spec", None)
  if spec is not None:
    input_transform(spec, channels=image_shape[-1])
  probe_images = jnp.stack([jnp.zeros(image_shape), jnp.linspace(-1.0, 1.0, np.prod(image_shape))
                            .reshape(image_shape)])
  try:
    logits, aux = jax.eval_shape(classifier.apply_fn, classifier.params, probe_images)
  except ValueError:
    raise
  except Exception as err:  # shape or type errors inside the user's model
    raise ValueError(f"The classifier fails on a batch of {image_shape} images (NHWC in [-1, 1] "
                     f"before its input spec): {type(err).__name__}: {str(err).splitlines()[0]}. "
                     "Check image_shape and the InputSpec (value range, layout).") from err
  if logits.ndim != 2 or logits.shape[0] != 2:
    raise ValueError(f"The classifier returns logits of shape {logits.shape} for a batch of 2; it "
                     "must return [batch, num_classes].")
  if num_classes is not None and logits.shape[1] != num_classes:
    raise ValueError(f"The classifier scores {logits.shape[1]} classes but num_classes={num_classes}; "
                     f"set num_classes={logits.shape[1]} or pass the classifier of that task.")
  feats = aux[FEATURES]
  if feats.ndim != 2 or feats.shape[0] != 2:
    raise ValueError(f"The classifier's features have shape {feats.shape} for a batch of 2; they "
                     "must be [batch, dim].")
  values = jax.jit(classifier.apply_fn)(classifier.params, probe_images)[0]
  if not bool(jnp.all(jnp.isfinite(values))):
    raise ValueError("The classifier returns non-finite logits on a probe batch (zeros and a "
                     "ramp in [-1, 1]); check its weights and its InputSpec (value range, mean/std).")
  return int(logits.shape[1])
