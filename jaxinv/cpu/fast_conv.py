"""Stride-1 2-D convolution with a backward pass XLA:CPU runs fast; same function.

XLA:CPU runs some convolutions far below matrix-product speed: kernel gradients over many
pixels, unpadded convolutions under YNNPACK, layers with very few input or output channels.
`conv2d` computes `lax.conv_general_dilated`'s function with forms that avoid those paths:
"im2col" (kernel gradient as matrix products of input patches; a row-split value for layers
whose output has more rows than the input), "blocked" (XLA's own passes, the kernel gradient
in batch blocks), and multiply-add / matrix-product forms for few-channel layers. The patch
matrices cost memory, and cuDNN's convolutions are fast, so "auto" takes these forms only with
`jaxinv.cpu` switched on and a CPU backend. Measurements: docs/performance-cpu.md.
"""

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

from jaxinv import cpu
from jaxinv.cpu import convolutions as cpu_convolutions

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")
IMPLS = ("auto", "im2col", "blocked", "xla")
KERNEL_GRADIENT_BATCH = 8  # examples per block up to 28×28 px; see default_kernel_gradient_block
KERNEL_GRADIENT_PIXELS = KERNEL_GRADIENT_BATCH * 28 * 28
# "blocked" computes a convolution of this many input channels or fewer (the paper CNN's
# first layer on grey images) as multiply-adds, its gradients as patch-matrix products:
# see the module docstring.
FEW_INPUT_CHANNELS = 1
# ... and one of this many output channels or fewer (a generator's last layer, which makes
# the image) as one matrix product and an overlap-add: see the module docstring.
FEW_OUTPUT_CHANNELS = 3
# "im2col" computes the value of a layer whose output has more rows than its input (the
# generator's K×K → H/2 layer) as a width-only convolution and a sum of row-shifted maps
# when it has at least this many input channels and the rows x lacks are at least this
# share of the output's (module docstring).
ROW_SPLIT_MIN_CHANNELS = 128
ROW_SPLIT_MIN_SKIPPED = 0.25
Padding = tuple[tuple[int, int], tuple[int, int]]


def resolve_impl(impl: str, on_cpu: str = "im2col") -> str:
  """`impl`, with "auto" → `on_cpu` when `jaxinv.cpu` is switched on and JAX's default backend
  is the CPU, else "xla" (Flax's / XLA's own convolutions). Read at trace time. "auto" never
  picks "blocked" with more than one device: its blocks are slices of the global batch,
  which a batch sharded over devices would have to move between them."""
  if impl not in IMPLS:
    raise ValueError(f"Unknown convolution impl {impl!r}; choose one of {IMPLS}.")
  if impl == "auto":
    if (not cpu.enabled() or jax.default_backend() != "cpu"
        or (on_cpu == "blocked" and jax.device_count() > 1)):
      return "xla"
    return on_cpu
  return impl


def default_kernel_gradient_block(height: int, width: int) -> int:
  """Examples per kernel-gradient block for an h×w output map: KERNEL_GRADIENT_BATCH up
  to 28×28 px, fewer on larger maps so a block stays at ≤ KERNEL_GRADIENT_PIXELS pixels
  (6 at 32 px, 1 from 80 px), at least one."""
  return max(1, min(KERNEL_GRADIENT_BATCH, KERNEL_GRADIENT_PIXELS // max(1, height * width)))


def explicit_padding(padding, kernel_size: Sequence[int]) -> Padding:
  """'SAME' / 'VALID' / an int / explicit pairs → ((lo, hi), (lo, hi)) for stride 1."""
  if isinstance(padding, str):
    if padding == "VALID":
      return ((0, 0), (0, 0))
    if padding == "SAME":
      return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_size)
    raise ValueError(f"padding must be 'SAME', 'VALID', an int or ((lo, hi), (lo, hi)); got {padding!r}")
  if isinstance(padding, int):
    return ((padding, padding), (padding, padding))
  return tuple((int(lo), int(hi)) for lo, hi in padding)


def _plain(x, kernel, padding):
  return lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DIMENSIONS)


def _pre_padded(x, kernel, padding: Padding):
  """x padded first, then an unpadded convolution: XLA's own gradients of this form
  stay off their slowest path (measured: 5×5 kernel, 10 px padded by 4: kernel
  gradient 1.0 s this way, 14 s with the padding inside the convolution)."""
  return _plain(jnp.pad(x, [(0, 0), padding[0], padding[1], (0, 0)]), kernel, ((0, 0), (0, 0)))


def _padded_conv(x, kernel, padding: Padding):
  """`_plain`, but under YNNPACK's convolutions an all-zero padding becomes one extra row
  and column, cropped off again: YNNPACK runs an unpadded convolution 1.3–3.4× slower than
  a padded one. Eigen's (`cpu_convolutions`) runs it faster than the padded-and-cropped
  form, so there it stays unpadded (2-core AMD EPYC Zen 5, batch 64, the paper generator's
  up0 input gradient, 5×5 256 → 256 at 14 → 10 px: YNNPACK 283–289 ms unpadded, 84 ms
  padded; Eigen 54–56 ms unpadded, 65–67 padded)."""
  if any(lo or hi for lo, hi in padding) or cpu_convolutions.eigen_convolutions_in_effect():
    return _plain(x, kernel, padding)
  return _plain(x, kernel, ((0, 1), (0, 1)))[:, :-1, :-1]


def _kernel_gradient(x, grad, padding: Padding, kernel_hw):
  """dL/dkernel as kh matrix products, one per kernel row, gathered on whichever grid
  is smaller: the output's (patches of the padded input against grad) or the input's
  (x against patches of grad padded by k−1−lo, k−1−hi: the same sums, re-indexed).
  A "full"-padded layer (the generator's K×K → H/2) has an input 0.51× the output's
  area, so the input grid halves the work. The width taps are gathered once; each
  kernel row then reads a row window of them (measured faster than one product over
  all kh·kw taps: 402 against 509 ms for the paper generator's up0 layer)."""
  kh, kw = kernel_hw
  n, ho, wo, cout = grad.shape
  _, h, w, cin = x.shape
  if h * w >= ho * wo:
    x = jnp.pad(x, [(0, 0), padding[0], padding[1], (0, 0)])
    width_taps = jnp.concatenate([x[:, :, j:j + wo, :] for j in range(kw)], axis=-1)
    grad_rows = grad.reshape(-1, cout).T
    per_row = [(grad_rows @ width_taps[:, i:i + ho].reshape(n * ho * wo, -1)).T for i in range(kh)]
    return jnp.stack(per_row).reshape(kh, kw, cin, cout)
  # dw[i, j] = Σ x[n, p, q] ⊗ grad_full[n, p + kh−1−i, q + kw−1−j].
  grad = jnp.pad(grad, [(0, 0), (kh - 1 - padding[0][0], kh - 1 - padding[0][1]),
                        (kw - 1 - padding[1][0], kw - 1 - padding[1][1]), (0, 0)])
  width_taps = jnp.concatenate([grad[:, :, kw - 1 - j:kw - 1 - j + w, :] for j in range(kw)], axis=-1)
  x_rows = x.reshape(-1, cin).T
  per_row = [x_rows @ width_taps[:, kh - 1 - i:kh - 1 - i + h].reshape(n * h * w, -1) for i in range(kh)]
  return jnp.stack(per_row).reshape(kh, cin, kw, cout).transpose(0, 2, 1, 3)


def _overlap_add(per_tap, padding: Padding):
  """Σ over taps (i, j) of per_tap [n, h, w, kh, kw, c] — each input pixel's contribution
  through tap (i, j) — shifted to the output it feeds: tap (i, j) of input pixel p lands on
  output p + lo − (i, j) (a negative pad crops). The output is the convolution's, h + lo +
  hi − kh + 1 rows by w + lo + hi − kw + 1 columns."""
  n, h, w, kh, kw, _ = per_tap.shape
  (lo_h, hi_h), (lo_w, hi_w) = padding
  out_h, out_w = h + lo_h + hi_h - kh + 1, w + lo_w + hi_w - kw + 1
  zero = jnp.zeros((), per_tap.dtype)
  terms = [lax.pad(per_tap[:, :, :, i, j, :], zero,
                   [(0, 0, 0), (lo_h - i, out_h - h - lo_h + i, 0), (lo_w - j, out_w - w - lo_w + j, 0), (0, 0, 0)])
           for i in range(kh) for j in range(kw)]
  return sum(terms[1:], terms[0])


def _row_split_conv(x, kernel, padding: Padding):
  """The convolution as one convolution along the width only (each kernel row's taps, all
  kh rows stacked on the output channels), over x's own rows, then the sum of the kh
  row-shifted maps: no products with the padding rows. For a layer whose output has more
  rows than its input (the generator's "full"-padded K×K → H/2 layer) that skips the
  products the padded convolution spends on padding rows."""
  kh, kw, cin, cout = kernel.shape
  (lo_h, hi_h), width_padding = padding
  n, h = x.shape[:2]
  rows = kernel.transpose(1, 2, 0, 3).reshape(1, kw, cin, kh * cout)  # [1, kw, cin, (row, cout)]
  per_row = _padded_conv(x, rows, ((0, 0), width_padding))
  # One "tap" per kernel row: the width is already the output's.
  return _overlap_add(per_row.reshape(n, h, per_row.shape[2], kh, 1, cout), ((lo_h, hi_h), (0, 0)))


def _im2col_forward(x, kernel, padding: Padding):
  """The value: `_row_split_conv` when it skips at least ROW_SPLIT_MIN_SKIPPED of the padded
  convolution's products (the output rows x does not have) and the layer has at least
  ROW_SPLIT_MIN_CHANNELS input channels (so the products skipped outweigh summing kh
  maps), else `_padded_conv`."""
  kh, _, cin, _ = kernel.shape
  h = x.shape[1]
  out_h = h + sum(padding[0]) - kh + 1
  if cin >= ROW_SPLIT_MIN_CHANNELS and out_h - h >= ROW_SPLIT_MIN_SKIPPED * out_h:
    return _row_split_conv(x, kernel, padding)
  return _padded_conv(x, kernel, padding)


@partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _im2col_conv(x, kernel, padding: Padding, constant_channels: int):
  return _im2col_forward(x, kernel, padding)


def _im2col_conv_fwd(x, kernel, padding, constant_channels):
  return _im2col_forward(x, kernel, padding), (x, kernel)


def _im2col_conv_bwd(padding, constant_channels, residuals, grad):
  x, kernel = residuals
  kh, kw = kernel.shape[:2]
  # The trailing `constant_channels` of x get no gradient (conv2d's stop_gradient): the input
  # gradient is computed for the other channels only, with their slice of the kernel.
  variable = kernel.shape[2] - constant_channels
  if kh * kw >= 9 or cpu_convolutions.eigen_convolutions_in_effect():
    # The input gradient is the "full" correlation of grad with the flipped, transposed
    # kernel, cut to x's extent: padding k−1−lo before and k−1−hi after. Under Eigen's
    # convolutions also for 2×2 kernels (paper generator's up1, 256 → 512 at 15 px: 47 → 36
    # ms at batch 64, 216 → 158 at 256, against XLA's own input gradient).
    back = tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip((kh, kw), padding))
    flipped = jnp.flip(kernel[:, :, :variable], (0, 1)).transpose(0, 1, 3, 2)
    x_grad = _padded_conv(grad, flipped, back)
  else:
    # For 2×2 kernels under YNNPACK XLA's own input gradient was faster (paper generator's
    # up1: 113 ms against 211 ms).
    _, pullback = jax.vjp(lambda x: _pre_padded(x, kernel[:, :, :variable], padding), x[..., :variable])
    (x_grad,) = pullback(grad)
  if constant_channels:
    x_grad = jnp.concatenate([x_grad, jnp.zeros((*x_grad.shape[:-1], constant_channels), x_grad.dtype)], -1)
  return x_grad.astype(x.dtype), _kernel_gradient(x, grad, padding, (kh, kw)).astype(kernel.dtype)


_im2col_conv.defvjp(_im2col_conv_fwd, _im2col_conv_bwd)


def _sum_of_tangent_terms(out, x_tangent, kernel_tangent, x_term, kernel_term):
  """The tangent of a convolution (linear in x and in the kernel): x_term(x_tangent) +
  kernel_term(kernel_tangent), skipping symbolic-zero tangents."""
  terms = []
  if not isinstance(x_tangent, SymbolicZero):
    terms.append(x_term(x_tangent))
  if not isinstance(kernel_tangent, SymbolicZero):
    terms.append(kernel_term(kernel_tangent))
  return sum(terms[1:], terms[0]) if terms else jnp.zeros_like(out)


@partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _blocked_conv(x, kernel, padding: Padding, block: int):
  return _padded_conv(x, kernel, padding)


def _blocked_conv_jvp(padding, block, primals, tangents):
  """The kernel's tangent term is computed per batch block; reverse mode transposes each
  block's convolution into that block's kernel gradient and sums them. A custom JVP
  rather than a custom VJP, so forward mode and every order of derivative still work."""
  (x, kernel), (x_tangent, kernel_tangent) = primals, tangents
  out = _padded_conv(x, kernel, padding)
  return out, _sum_of_tangent_terms(
      out, x_tangent, kernel_tangent, lambda t: _padded_conv(t, kernel, padding),
      lambda t: jnp.concatenate([_padded_conv(x[start:start + block], t, padding)
                                 for start in range(0, x.shape[0], block)]))


_blocked_conv.defjvp(_blocked_conv_jvp, symbolic_zeros=True)


def _windows(x, padding: Padding, kernel_hw):
  """The kh·kw shifted windows of padded x, row-major over the kernel, each [n, ho, wo, cin]."""
  kh, kw = kernel_hw
  x = jnp.pad(x, [(0, 0), padding[0], padding[1], (0, 0)])
  ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  return [x[:, i:i + ho, j:j + wo, :] for i in range(kh) for j in range(kw)]


def _tap_sum(x, kernel, padding: Padding):
  """The convolution as Σ over taps and input channels of window · kernel row: elementwise
  multiply-adds that XLA fuses into one loop (few input channels only)."""
  kh, kw, cin, _ = kernel.shape
  windows = _windows(x, padding, (kh, kw))
  terms = [windows[t][..., c:c + 1] * kernel[t // kw, t % kw, c] for t in range(kh * kw) for c in range(cin)]
  return sum(terms[1:], terms[0])


def _patch_product(x, kernel, padding: Padding):
  """The convolution as one matrix product of x's patch matrix (im2col) with the kernel."""
  kh, kw, cin, cout = kernel.shape
  windows = _windows(x, padding, (kh, kw))
  n, ho, wo, _ = windows[0].shape
  patches = jnp.concatenate(windows, axis=-1).reshape(n * ho * wo, kh * kw * cin)
  return (patches @ kernel.reshape(kh * kw * cin, cout)).reshape(n, ho, wo, cout)


def _tap_products(x, kernel, padding: Padding):
  """The convolution as x times every tap's kernel slice at once, [n·h·w, cin] ×
  [cin, kh·kw·cout], then the sum of the kh·kw contribution maps, each shifted to the
  outputs its tap feeds (tap (i, j) of input pixel p lands on output p + lo − (i, j); a
  negative pad crops). Cheap only when cout is small: the products are kh·kw·cout per pixel."""
  kh, kw, cin, cout = kernel.shape
  n, h, w, _ = x.shape
  per_tap = x.reshape(n * h * w, cin) @ kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
  return _overlap_add(per_tap.reshape(n, h, w, kh, kw, cout), padding)


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def _few_channel_conv(x, kernel, padding: Padding):
  return _tap_sum(x, kernel, padding)


def _few_channel_conv_jvp(padding, primals, tangents):
  """Value as multiply-adds; both tangent terms as patch-matrix products, whose transposes
  (reverse mode) are a product with the kernel scattered back over the windows (input
  gradient) and one product of the patch matrix with the output gradient (kernel gradient)."""
  (x, kernel), (x_tangent, kernel_tangent) = primals, tangents
  out = _tap_sum(x, kernel, padding)
  return out, _sum_of_tangent_terms(out, x_tangent, kernel_tangent,
                                    lambda t: _patch_product(t, kernel, padding),
                                    lambda t: _patch_product(x, t, padding))


_few_channel_conv.defjvp(_few_channel_conv_jvp, symbolic_zeros=True)


def conv2d(x, kernel, padding="SAME", impl: str = "auto", on_cpu: str = "im2col",
           kernel_gradient_block: int | None = None, constant_channels: int = 0):
  """Stride-1 convolution (NHWC input, HWIO kernel) = `lax.conv_general_dilated(x,
  kernel, (1, 1), padding)`, with the CPU-friendly backward pass of the module docstring
  when `impl` resolves to "im2col" or "blocked" ("auto" → `on_cpu` on a CPU). Paddings
  larger than kernel − 1 (whose input gradient would need negative padding) use XLA's own.
  `kernel_gradient_block` ("blocked" only; default `default_kernel_gradient_block(h, w)` of the
  output map) is the number of examples per kernel-gradient block. The last
  `constant_channels` input channels are constants, as under `lax.stop_gradient` (the
  generator's hot matrix, a function of integer labels): no derivative flows to them, and
  "im2col" computes the input gradient of the other channels only (measured on the small
  generator's 49 → 48 channel layer: 10.5 → 4.8 ms at batch 64; XLA:CPU's convolution with 49
  output channels ran at half the speed of one with 48)."""
  pads = explicit_padding(padding, kernel.shape[:2])
  if min(min(p) for p in pads) < 0:
    raise ValueError(f"conv2d needs non-negative padding, got {pads}.")
  fits = all(hi <= k - 1 and lo <= k - 1 for k, (lo, hi) in zip(kernel.shape[:2], pads))
  if kernel_gradient_block is not None and kernel_gradient_block < 1:
    raise ValueError(f"kernel_gradient_block must be ≥ 1, got {kernel_gradient_block}.")
  if not 0 <= constant_channels < x.shape[-1]:
    raise ValueError(f"constant_channels must be in [0, {x.shape[-1]}) for {x.shape[-1]} input channels, "
                     f"got {constant_channels}.")
  if constant_channels:
    x = jnp.concatenate([x[..., :-constant_channels], lax.stop_gradient(x[..., -constant_channels:])], -1)
  impl = resolve_impl(impl, on_cpu)
  if impl == "xla" or not fits:
    return _pre_padded(x, kernel, pads)
  if kernel.shape[-1] <= FEW_OUTPUT_CHANNELS:
    return _tap_products(x, kernel, pads)
  if impl == "blocked":
    if kernel_gradient_block is None:
      out_h = x.shape[1] + sum(pads[0]) - kernel.shape[0] + 1
      out_w = x.shape[2] + sum(pads[1]) - kernel.shape[1] + 1
      kernel_gradient_block = default_kernel_gradient_block(out_h, out_w)
    if x.shape[-1] <= FEW_INPUT_CHANNELS:
      return _few_channel_conv(x, kernel, pads)
    if x.shape[0] <= kernel_gradient_block:
      return _padded_conv(x, kernel, pads)
    return _blocked_conv(x, kernel, pads, int(kernel_gradient_block))
  return _im2col_conv(x, kernel, pads, int(constant_channels))
