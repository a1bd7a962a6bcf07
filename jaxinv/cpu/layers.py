"""Hand-made convolution layers for XLA:CPU: the same parameters and functions as Flax's.

`Conv`, `UpsampleConv` and `SubPixelConvTranspose` compute `nn.Conv`, `nn.Conv` of a
nearest-upsampled map and `nn.ConvTranspose` as stride-1 convolutions whose gradients
XLA:CPU runs fast (`fast_conv`). `jaxinv.models.layers` picks them with `impl="auto"` only
when `jaxinv.cpu` is switched on and the backend is the CPU.
"""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxinv.cpu.fast_conv import conv2d, explicit_padding, resolve_impl


class Conv(nn.Module):
  """`flax.linen.Conv` with stride 1 (same parameters, names, shapes and initialisers;
  same function) computed by `fast_conv.conv2d`. "auto" takes the "blocked" kernel
  gradient on a single CPU device (XLA's own passes, the kernel gradient in batch
  blocks) and elsewhere (GPU, TPU, several devices) exactly nn.Conv's convolution."""
  features: int
  kernel_size: tuple[int, int] = (3, 3)
  padding: str | tuple = "SAME"
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  impl: str = "auto"
  dtype: Any = None  # compute dtype (None: x's); parameters are float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features),
                        jnp.float32)
    x = x.astype(self.dtype or x.dtype)
    kernel = kernel.astype(x.dtype)
    if resolve_impl(self.impl, on_cpu="blocked") == "xla":  # exactly nn.Conv's operation
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), explicit_padding(self.padding, self.kernel_size),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    else:
      y = conv2d(x, kernel, self.padding, self.impl, on_cpu="blocked")
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(x.dtype)
    return y


def upsample_nearest_2x(x: jnp.ndarray) -> jnp.ndarray:
  """Nearest-neighbour 2× upsampling, NHWC (the 'resize' half of a resize-convolution)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


# Output phase a (row 2i + a) of a 3×3 'SAME' convolution of a nearest-upsampled map reads
# input rows i − 1 and i (a = 0: padding one row before) or i and i + 1 (a = 1: one
# after); each matrix sums the 3×3 kernel's rows (or columns) into the 2 taps it sees.
_PHASE_TAPS = ((((1, 0, 0), (0, 1, 1)), (1, 0)),
               (((1, 1, 0), (0, 0, 1)), (0, 1)))


class UpsampleConv(nn.Module):
  """`Conv(features, (3, 3), padding="SAME")(upsample_nearest_2x(x))` — same parameters,
  names and initialisers as that `nn.Conv`, same function — computed, off the "xla" path,
  on the small map: each of the 4 output phases (row and column parity) is a 2×2
  convolution of x with the kernel's taps summed as the phase sees them, and the phases
  are interleaved. 4/9 of the multiplications and no upsampled copy; the sums of kernel
  taps round differently from the direct form (float32: ~1e-6 relative). "auto" takes
  this form on one CPU device (with `conv2d`'s blocked kernel gradient) and elsewhere
  is exactly nn.Conv on the upsampled map."""
  features: int
  use_bias: bool = False
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  impl: str = "auto"
  dtype: Any = None  # compute dtype (None: x's); parameters are float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features), jnp.float32)
    x = x.astype(self.dtype or x.dtype)
    kernel = kernel.astype(x.dtype)
    if resolve_impl(self.impl, on_cpu="blocked") == "xla":  # exactly nn.Conv's operation
      y = jax.lax.conv_general_dilated(upsample_nearest_2x(x), kernel, (1, 1), ((1, 1), (1, 1)),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    else:
      phase_rows = []
      for row_taps, row_pad in _PHASE_TAPS:
        phase_cols = []
        for col_taps, col_pad in _PHASE_TAPS:
          taps = jnp.einsum("rd,se,deio->rsio", jnp.asarray(row_taps, x.dtype),
                            jnp.asarray(col_taps, x.dtype), kernel)
          phase_cols.append(conv2d(x, taps, (row_pad, col_pad), self.impl, on_cpu="blocked"))
        phase_rows.append(jnp.stack(phase_cols, axis=3))  # [n, h, w, column parity, c]
      y = jnp.stack(phase_rows, axis=2)  # [n, h, row parity, w, column parity, c]
      n, h, _, w, _, c = y.shape
      y = y.reshape(n, 2 * h, 2 * w, c)
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(x.dtype)
    return y


def _transpose_padding(kernel: int, stride: int, padding: str) -> tuple[int, int]:
  """The (before, after) padding `lax.conv_transpose` gives the dilated input for
  'SAME' / 'VALID' (its private `_conv_transpose_padding`, restated)."""
  if padding == "SAME":
    total = kernel + stride - 2
    before = kernel - 1 if stride > kernel - 1 else -(-total // 2)
  elif padding == "VALID":
    total = kernel + stride - 2 + max(kernel - stride, 0)
    before = kernel - 1
  else:
    raise ValueError(f"padding must be 'SAME', 'VALID' or explicit pairs, got {padding!r}")
  return before, total - before


def _phase_taps(kernel: int, stride: int, pad_before: int):
  """For one spatial dim of a transposed convolution, the taps each output phase uses.

  lax.conv_transpose computes out[o] = Σ_t x_dilated[o + t − pad_before]·K[t], where
  x_dilated[j] = x[j / stride] when stride divides j, else 0. Output o = stride·q + r
  therefore reads only taps t ≡ pad_before − r (mod stride), t = t0 + stride·u, at
  inputs x[q + offset + u] with offset = (r + t0 − pad_before) / stride.
  Returns [(t0, offset)] per phase r and the taps per phase, m."""
  phases = []
  for r in range(stride):
    t0 = (pad_before - r) % stride
    phases.append((t0, (r + t0 - pad_before) // stride))
  taps = -(-kernel // stride)  # ceil: phases with fewer taps get zero weights
  return phases, taps


def conv_transpose_subpixel(x, kernel, strides, padding, impl: str = "auto", constant_channels: int = 0):
  """`lax.conv_transpose(x, kernel, strides, padding)` (NHWC, HWIO kernel, no kernel
  transpose or dilation) computed as one stride-1 convolution plus depth-to-space.

  Each of the stride² output phases is a stride-1 convolution of x with a sub-kernel
  (every stride-th tap); the sub-kernels are stacked along the output channels so one
  convolution computes all phases, which are then interleaved. No zeros are inserted
  into the input, so no multiply is wasted on them, and the kernel gradient is a plain
  convolution (XLA:CPU lowers the dilated one of lax.conv_transpose ~30× slower than the
  forward pass). Needs each output length to divide by its stride (true for 'SAME', and
  for 'VALID' when kernel ≤ stride or stride is 1). The last `constant_channels` of x are
  constants (`fast_conv.conv2d`)."""
  n, height, width, cin = x.shape
  kh, kw, kin, cout = kernel.shape
  if kin != cin:
    raise ValueError(f"kernel expects {kin} input channels, x has {cin}")
  sizes, dims = (height, width), []
  for axis, (k, s) in enumerate(zip((kh, kw), strides)):
    if isinstance(padding, str):
      before, after = _transpose_padding(k, s, padding)
    else:
      before, after = padding[axis]
    out_len = (sizes[axis] - 1) * s + 1 + before + after - k + 1
    if out_len % s:
      raise ValueError(f"conv_transpose_subpixel needs output length {out_len} to divide by stride {s}; "
                       "use lax.conv_transpose for this shape.")
    phases, taps = _phase_taps(k, s, before)
    dims.append((s, phases, taps, out_len // s))

  # Stack the phases' sub-kernels: [taps_h, taps_w, cin, (r_h, r_w, cout)].
  padded = jnp.pad(kernel, [(0, dims[0][2] * dims[0][0] - kh), (0, dims[1][2] * dims[1][0] - kw),
                            (0, 0), (0, 0)])
  sub_kernels = []
  for t0h, _ in dims[0][1]:
    for t0w, _ in dims[1][1]:
      sub = padded[t0h::dims[0][0], t0w::dims[1][0]][: dims[0][2], : dims[1][2]]
      sub = jnp.pad(sub, [(0, dims[0][2] - sub.shape[0]), (0, dims[1][2] - sub.shape[1]), (0, 0), (0, 0)])
      sub_kernels.append(sub)
  stacked = jnp.concatenate(sub_kernels, axis=-1)

  # Pad x so that conv output position j reads x[j − low …]; phase r's output q sits at
  # j = q + offset_r + low.
  pads, starts = [], []
  for (s, phases, taps, q_len), size in zip(dims, sizes):
    offsets = [offset for _, offset in phases]
    low = -min(offsets)
    needed = q_len + max(offsets) - min(offsets) + taps - 1
    pads.append((low, needed - size - low))
    starts.append([offset + low for offset in offsets])
  if any(lo < 0 or hi < 0 for lo, hi in pads):  # crop instead of negative padding
    x = x[:, max(0, -pads[0][0]): height - max(0, -pads[0][1]) or None,
          max(0, -pads[1][0]): width - max(0, -pads[1][1]) or None]
    starts = [[st - max(0, -p[0]) for st in s_] for s_, p in zip(starts, pads)]
    pads = [(max(0, lo), max(0, hi)) for lo, hi in pads]
  # The padding goes to the convolution rather than to x: conv2d picks XLA:CPU's
  # fast paths from it (see fast_conv).
  y = conv2d(x, stacked.astype(x.dtype), tuple(pads), impl, constant_channels=constant_channels)
  (sh, _, _, qh), (sw, _, _, qw) = dims
  y = y.reshape(n, y.shape[1], y.shape[2], sh, sw, cout)
  rows = []
  for rh, jh in enumerate(starts[0]):
    cols = [y[:, jh: jh + qh, jw: jw + qw, rh, rw] for rw, jw in enumerate(starts[1])]
    rows.append(jnp.stack(cols, axis=3))  # [n, qh, qw, sw, cout]
  out = jnp.stack(rows, axis=2)  # [n, qh, sh, qw, sw, cout]
  return out.reshape(n, qh * sh, qw * sw, cout)


class SubPixelConvTranspose(nn.Module):
  """`flax.linen.ConvTranspose` (same parameters, names, shapes and initialisers; same
  function) computed by `conv_transpose_subpixel`, which XLA compiles to plain
  stride-1 convolutions in both directions."""
  features: int
  kernel_size: tuple[int, int]
  strides: tuple[int, int] = (1, 1)
  padding: str | tuple = "SAME"
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros_init()
  dtype: Any = None
  impl: str = "auto"  # fast_conv.conv2d's backward-pass choice
  # Trailing input channels that are constants (no derivative flows to them; their input
  # gradient is not computed): the generator's hot matrix.
  constant_channels: int = 0

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features),
                        jnp.float32)
    dtype = self.dtype or x.dtype
    y = conv_transpose_subpixel(x.astype(dtype), kernel.astype(dtype), tuple(self.strides), self.padding,
                                self.impl, self.constant_channels)
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(dtype)
    return y
