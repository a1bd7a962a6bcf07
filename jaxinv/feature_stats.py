"""Feature-statistics matching, the DeepInversion prior (Yin et al. 2020): the batch
mean and variance of each batch-norm layer's input on the generated batch, pulled
towards the running statistics the classifier stored while it trained.

The inputs are recorded while the classifier runs (`flax.linen.intercept_methods`),
so the prior costs no second forward pass; the running statistics are read from
the classifier's `batch_stats` collection, so nothing is retrained.
"""

import flax.linen as nn
import jax.numpy as jnp


def capture_batch_norm_inputs(fn, *args, **kwargs):
  """Calls `fn(*args, **kwargs)` (a `Module.apply`) and returns `(its output, {path: input})`
  with the input of every `nn.BatchNorm` call, keyed by the layer's path in the
  variables (e.g. `("bn0",)` or `("stage0", "bn1")`)."""
  inputs = {}

  def record(next_fun, call_args, call_kwargs, context):
    if isinstance(context.module, nn.BatchNorm) and context.method_name == "__call__":
      inputs[tuple(context.module.path)] = call_args[0]
    return next_fun(*call_args, **call_kwargs)

  with nn.intercept_methods(record):
    out = fn(*args, **kwargs)
  return out, inputs


def running_statistics(batch_stats, path):
  """`(mean, var)` stored for the batch-norm layer at `path`."""
  node = batch_stats
  for name in path:
    node = node[name]
  return node["mean"], node["var"]


def layer_statistics(x):
  """Per-channel batch mean and (biased) variance over every axis but the last, in at least
  float32 (a bfloat16 classifier's batch-norm inputs are bfloat16)."""
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  axes = tuple(range(x.ndim - 1))
  return jnp.mean(x, axis=axes), jnp.var(x, axis=axes)


def statistics_distance(x, mean, var):
  """‖μ_batch − μ_run‖₂ + ‖σ²_batch − σ²_run‖₂ for one layer (DeepInversion's R_feature)."""
  batch_mean, batch_var = layer_statistics(x)
  return jnp.linalg.norm(batch_mean - mean) + jnp.linalg.norm(batch_var - var)


def feature_statistics_loss(bn_inputs, batch_stats):
  """Sum over batch-norm layers of `statistics_distance` to the running statistics."""
  if not bn_inputs:
    raise ValueError("The feature-statistics prior needs a classifier with batch-norm layers "
                     "(the MLP has none); set priors.feature_statistics = 0 or invert a "
                     "CNN/ResNet.")
  return sum(statistics_distance(x, *running_statistics(batch_stats, path))
             for path, x in sorted(bn_inputs.items()))


def feature_statistics_term(ctx):
  """`TermContext -> scalar`: the prior on the batch the classifier saw in the step."""
  return feature_statistics_loss(ctx.bn_inputs, ctx.classifier_variables["batch_stats"])
