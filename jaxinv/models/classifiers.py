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
import numpy as np
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


class WhitenedConvNet(nn.Module):
  """A fast-training CIFAR net after Keller Jordan's airbench recipe: a 2×2 patch-whitening
  convolution (its kernel set from the data by `patch_whitening_kernel`), then blocks of
  [conv → 2×2 max pool → batch norm → GELU → conv → batch norm → GELU], a global max
  pool and a bias-free linear head with small logits."""

  num_classes: int
  widths: Sequence[int] = (64, 256, 256)
  # 2 × the 4·C dimensions of a 2×2×C patch (each filter and its negative): 24 for RGB,
  # 8 for grayscale; None takes that from the input.
  whiten_width: int | None = None
  logit_scale: float = 1 / 9  # small logits at the start, as in the recipe
  conv_impl: str = "auto"
  dtype: Any = None  # compute dtype (None: the input's); parameters stay float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    # Running statistics move fast (Flax momentum 0.6): the recipe trains for few steps.
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.6, dtype=self.dtype,
                                     param_dtype=F32, name=name)
    conv = lambda h, width, kernel, name, **kw: layers.conv(h, width, kernel, impl=self.conv_impl,
                                                            dtype=self.dtype, name=name, **kw)
    h = nn.gelu(conv(x, self.whiten_width or full_whiten_width(x.shape[-1]), (2, 2), "whiten",
                     padding="VALID"))
    aux = {}
    for i, width in enumerate(self.widths):
      h = conv(h, width, (3, 3), f"block{i}_conv0", use_bias=False)
      h = nn.gelu(norm(f"block{i}_bn0")(max_pool_2x2(h)))
      h = conv(h, width, (3, 3), f"block{i}_conv1", use_bias=False)
      h = nn.gelu(norm(f"block{i}_bn1")(h))
      aux[f"block{i}"] = h
    features = h.max(axis=(1, 2))
    aux["penultimate"] = features
    logits = nn.Dense(self.num_classes, use_bias=False, dtype=self.dtype, param_dtype=F32,
                      name="head")(features) * self.logit_scale
    return _float32(logits, aux)


def full_whiten_width(channels: int) -> int:
  """`WhitenedConvNet`'s whitening width for `channels`-channel images: every direction of
  a 2×2 patch and its negative."""
  return 2 * 4 * channels


def patch_whitening_kernel(images: np.ndarray, out_channels: int = 24,
                           eps: float = 5e-4) -> np.ndarray:
  """The `whiten` kernel (2, 2, C, out_channels) of `WhitenedConvNet` for these images.

  Filters are the eigenvectors of the 2×2-patch covariance scaled by 1/√(λ + eps),
  so the layer's outputs are decorrelated with unit variance; the second half are
  the first half negated, so the GELU after them passes both signs.
  """
  images = np.asarray(images, np.float64)
  n, h, w, c = images.shape
  patches = np.stack([images[:, dy:h - 1 + dy, dx:w - 1 + dx] for dy in (0, 1) for dx in (0, 1)],
                     axis=-2)  # [n, h-1, w-1, 4 (dy, dx), c]: the kernel's (kh, kw, cin) order
  patches = patches.reshape(-1, 4 * c)
  patches = patches - patches.mean(axis=0)
  covariance = patches.T @ patches / len(patches)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
  filters = eigenvectors[:, ::-1] / np.sqrt(eigenvalues[::-1] + eps)  # columns: strongest first
  half = out_channels // 2
  if half > 4 * c or out_channels % 2:
    raise ValueError(f"out_channels={out_channels} must be even and at most {2 * 4 * c} "
                     f"for {c}-channel images")
  filters = filters[:, :half]
  kernel = np.concatenate([filters, -filters], axis=1)
  return kernel.reshape(2, 2, c, out_channels).astype(np.float32)


CLASSIFIERS = {"mlp": MLP, "cnn": PaperCNN, "resnet": SmallResNet, "airbench": WhitenedConvNet}


def build_classifier(name: str, num_classes: int, **kwargs) -> nn.Module:
  if name not in CLASSIFIERS:
    raise ValueError(
        f"Unknown classifier model {name!r}; choose one of {sorted(CLASSIFIERS)} "
        "(config field classifier.model).")
  return CLASSIFIERS[name](num_classes=num_classes, **kwargs)
