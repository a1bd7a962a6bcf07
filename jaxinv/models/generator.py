"""The label-conditioned generator G(z, p, M) (method notes §3).

Layout for a K-class problem and an H×W×C image (H = W, even):

    [z, embed(p or y)] → dense → K×K map ─┬─ concat hot matrix M (K×K×1)
                                          └→ dropout → up to H/2 → dropout → up to H → conv → tanh

The hot matrix is injected where the feature map is K×K, which is why the dense
layer produces a K×K map; dropout acts on the up-convolutions after it, never on
the matrix itself, which carries the label. Up-sampling is either transposed convolutions
(`upsample="transpose"`, the paper's up-convolutions, computed as
`nn.ConvTranspose`) or resize-convolutions (`upsample="resize"`: nearest/bilinear resize then
a 3×3 convolution, which avoids checkerboard artefacts). With `jaxinv.cpu` switched on, a CPU
backend computes both in forms XLA:CPU differentiates fast (`models.layers`). Output range
is fixed to [-1, 1] by `tanh`, the input range of every jaxinv classifier.

`dtype` is the compute dtype (float32, or bfloat16 / float16 for mixed precision): parameters
stay float32, batch norm reduces in float32, and the images come out as float32
(None: the inputs' dtype, as in Flax).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxinv import conditioning
from jaxinv.models import layers
from jaxinv.models.layers import RateDropout

UPSAMPLE_KINDS = ("transpose", "resize")


def uses_matrix(mode: str) -> bool:
  return mode in ("matrix", "vector_matrix", "one_hot")


def uses_vector(mode: str) -> bool:
  return mode in ("vector", "vector_matrix", "one_hot")


class ConditionedGenerator(nn.Module):
  num_classes: int
  image_shape: tuple  # (H, W, C)
  mode: str = "vector_matrix"
  hot_pattern: str = "cross"
  # The conditioning vectors' softmax temperature (`jaxinv.conditioning`): the generator is
  # trained and sampled with `p = softmax(v / temperature)`; 1 is the paper's.
  temperature: float = 1.0
  dropout_rate: float = 0.3
  width: int = 64
  latent_dim: int = 100  # size of z
  embed_dim: int = 100
  upsample: str = "resize"
  # > 0: a fixed (untrained) Gaussian blur of this std in pixels on the output's
  # pre-activation, so the image holds no detail finer than about the blur.
  blur: float = 0.0
  # How convolutions are computed (jaxinv.cpu.fast_conv.IMPLS): "auto" = Flax's own layers,
  # or with jaxinv.cpu switched on and a CPU backend its hand-made forms; "xla" = Flax's own.
  conv_impl: str = "auto"
  dtype: Any = None  # compute dtype (None: the inputs'); parameters are float32 whatever it is

  def setup_check(self):
    h, w, _ = self.image_shape
    if self.mode not in conditioning.MODES:
      raise ValueError(f"Unknown generator mode {self.mode!r}; choose one of {conditioning.MODES} "
                       "(config field generator.mode).")
    if self.upsample not in UPSAMPLE_KINDS:
      raise ValueError(f"Unknown generator.upsample {self.upsample!r}; choose one of {UPSAMPLE_KINDS}.")
    if h != w or h % 2:
      raise ValueError(f"The generator makes square images of even size; got image_shape {self.image_shape}.")

  @nn.compact
  def __call__(self, z, p, y, train: bool = False, dropout: bool | None = None, dropout_rate=None):
    """z: [B, latent_dim] latents; p: [B, K] conditioning vectors; y: [B] int labels.

    `train` switches batch norm to batch statistics (and updates them); `dropout`
    (default: `train`) keeps dropout active, which needs a "dropout" rng;
    `dropout_rate` (a scalar, may be traced) overrides the field."""
    self.setup_check()
    if z.shape[-1] != self.latent_dim:
      raise ValueError(f"z has {z.shape[-1]} entries but generator.latent_dim is {self.latent_dim}.")
    k = self.num_classes
    size, _, out_channels = self.image_shape
    half = size // 2
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype,
                                     param_dtype=jnp.float32, name=name)
    active = train if dropout is None else dropout
    rate = self.dropout_rate if dropout_rate is None else dropout_rate

    # One module for both layers, named as Linen names an unnamed nn.Dropout (its masks
    # come from the module's "dropout" rng stream, as nn.Dropout's do).
    dropout_module = RateDropout(name="Dropout_0")
    drop = lambda x: dropout_module(x, rate, deterministic=not active)

    inputs = [z]
    if self.mode == "label":
      inputs.append(nn.Embed(k, self.embed_dim, dtype=self.dtype, param_dtype=jnp.float32, name="label_embed")(y))
    elif uses_vector(self.mode):
      # p's entries are O(1/K); scaled by K the embedding starts at the scale of z,
      # otherwise the label signal is drowned by the latent at initialisation.
      inputs.append(nn.Dense(self.embed_dim, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                             name="vector_embed")(p * k))
    h = jnp.concatenate(inputs, axis=-1)

    # Layers followed by batch norm carry no bias: its gradient is zero in exact
    # arithmetic, and Adam would turn the rounding noise into full-size steps.
    h = nn.Dense(k * k * 2 * self.width, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                 name="project")(h)
    h = nn.relu(norm("bn_project")(h)).reshape(-1, k, k, 2 * self.width)
    matrix_channels = 0
    if uses_matrix(self.mode):
      matrix = conditioning.hot_matrices(y, k, self.hot_pattern).astype(h.dtype)
      h = jnp.concatenate([h, matrix], axis=-1)
      matrix_channels = 1  # a function of integer labels: up0 computes no gradient for it

    # K×K → H/2.
    if self.upsample == "transpose" and half >= k:
      kernel = half - k + 1
      h = layers.conv_transpose(h, 2 * self.width, (kernel, kernel), padding="VALID", use_bias=False,
                                impl=self.conv_impl, dtype=self.dtype, constant_channels=matrix_channels,
                                name="up0")
    else:
      h = jax.image.resize(h, (h.shape[0], half, half, h.shape[-1]), method="bilinear")
      h = layers.conv(h, 2 * self.width, (3, 3), use_bias=False, impl=self.conv_impl, dtype=self.dtype,
                      name="up0")
    h = drop(nn.relu(norm("bn_up0")(h)))

    # H/2 → H.
    if self.upsample == "transpose":
      h = layers.conv_transpose(h, self.width, (4, 4), strides=(2, 2), padding="SAME", use_bias=False,
                                impl=self.conv_impl, dtype=self.dtype, name="up1")
    else:
      h = layers.upsample_conv(h, self.width, impl=self.conv_impl, dtype=self.dtype, name="up1")
    h = drop(nn.relu(norm("bn_up1")(h)))
    h = layers.conv(h, out_channels, (3, 3), impl=self.conv_impl, dtype=self.dtype, name="to_image")
    if self.blur:
      h = layers.gaussian_blur(h, self.blur)
    # Losses and priors read the image in (at least) float32.
    return jnp.tanh(h).astype(jnp.promote_types(h.dtype, jnp.float32))
