"""Classifiers to invert: Linen modules taking images in [-1, 1] (NHWC).

Every classifier returns `(logits, aux)`; `aux["penultimate"]` holds the features
the diversity losses use. Batch norm keeps its running statistics in the
`batch_stats` collection; dropout draws from the `dropout` rng.

`dtype` is the compute dtype (float32, or bfloat16 / float16 for mixed precision):
parameters stay float32, and logits and `aux` come out as float32 so losses and metrics
are computed in float32. None (the default): the inputs' dtype, as in Flax.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxinv.models import layers
from jaxinv.models.layers import max_pool_2x2

F32 = jnp.float32


def _float32(logits, aux):
  """Logits and features in at least float32, whatever the compute dtype (losses read them)."""
  up = lambda a: a.astype(jnp.promote_types(a.dtype, F32))
  return up(logits), jax.tree.map(up, aux)


def _leaky_relu(x):
  return nn.leaky_relu(x, negative_slope=0.2)


class MLP(nn.Module):
  """Flatten → dense blocks with LeakyReLU and dropout → logits."""

  num_classes: int
  hidden: Sequence[int] = (256, 128)
  dropout_rate: float = 0.2
  batch_norm: bool = False  # dense → batch norm → LeakyReLU (the reconstruction recipe)
  dtype: Any = None  # compute dtype (None: the inputs'); parameters are float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.hidden):
      h = nn.Dense(width, use_bias=not self.batch_norm, dtype=self.dtype, param_dtype=F32,
                   name=f"dense{i}")(h)
      if self.batch_norm:
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype,
                         param_dtype=F32, name=f"bn{i}")(h)
      h = _leaky_relu(h)
      if i < len(self.hidden) - 1:
        h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    features = h
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=F32, name="head")(h)
    return _float32(logits, {"penultimate": features})


class PaperCNN(nn.Module):
  """The paper-style CNN: [conv → batch norm → LeakyReLU → 2×2 max pool] × n,
  dropout, a dense penultimate layer, dropout, dense logits."""

  num_classes: int
  channels: Sequence[int] = (32, 64)
  dense_width: int = 128
  dropout_rate: float = 0.25
  conv_impl: str = "auto"  # how the convolutions are computed (jaxinv.models.layers.conv)
  dtype: Any = None  # compute dtype (None: the inputs'); parameters are float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    aux = {}
    h = x
    for i, ch in enumerate(self.channels):
      h = layers.conv(h, ch, (3, 3), padding="SAME", use_bias=False, impl=self.conv_impl, dtype=self.dtype,
                      name=f"conv{i}")
      h = nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype, param_dtype=F32,
                       name=f"bn{i}")(h)
      h = max_pool_2x2(_leaky_relu(h))
      aux[f"block{i}"] = h
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = _leaky_relu(nn.Dense(self.dense_width, dtype=self.dtype, param_dtype=F32,
                             name="dense")(h.reshape(h.shape[0], -1)))
    aux["penultimate"] = h
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return _float32(nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=F32, name="head")(h), aux)


class _ResidualBlock(nn.Module):
  channels: int
  strides: int = 1
  dtype: Any = None  # compute dtype (None: the inputs'); parameters are float32

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype,
                                     param_dtype=F32, name=name)
    conv = lambda *args, **kwargs: nn.Conv(*args, use_bias=False, dtype=self.dtype, param_dtype=F32, **kwargs)
    h = conv(self.channels, (3, 3), self.strides, padding="SAME", name="conv0")(x)
    h = nn.relu(norm("bn0")(h))
    h = conv(self.channels, (3, 3), padding="SAME", name="conv1")(h)
    h = norm("bn1")(h)
    if x.shape != h.shape:
      x = conv(self.channels, (1, 1), self.strides, name="proj")(x)
      x = norm("bn_proj")(x)
    return nn.relu(h + x)


class SmallResNet(nn.Module):
  """A small ResNet for 32×32×3: stem, one residual block per stage, global average pool."""

  num_classes: int
  stage_channels: Sequence[int] = (32, 64, 128)
  dropout_rate: float = 0.1
  dtype: Any = None  # compute dtype (None: the inputs'); parameters are float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.Conv(self.stage_channels[0], (3, 3), padding="SAME", use_bias=False, dtype=self.dtype,
                param_dtype=F32, name="stem")(x)
    h = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype,
                             param_dtype=F32, name="stem_bn")(h))
    aux = {}
    for i, ch in enumerate(self.stage_channels):
      h = _ResidualBlock(ch, strides=1 if i == 0 else 2, dtype=self.dtype, name=f"stage{i}")(h, train)
      aux[f"block{i}"] = h
    features = h.mean(axis=(1, 2))
    aux["penultimate"] = features
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(features)
    return _float32(nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=F32, name="head")(h), aux)


CLASSIFIERS = {"mlp": MLP, "cnn": PaperCNN, "resnet": SmallResNet}


def build_classifier(name: str, num_classes: int, **kwargs) -> nn.Module:
  if name not in CLASSIFIERS:
    raise ValueError(
        f"Unknown classifier model {name!r}; choose one of {sorted(CLASSIFIERS)} "
        "(config field classifier.model).")
  return CLASSIFIERS[name](num_classes=num_classes, **kwargs)
