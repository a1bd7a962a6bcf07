"""fast_conv.conv2d computes lax.conv_general_dilated's function and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxinv.cpu import convolutions as cpu_convolutions
from jaxinv.cpu import fast_conv


@pytest.mark.parametrize("kernel,padding,size", [
    ((3, 3), "SAME", (9, 9)),
    ((5, 5), ((4, 4), (4, 4)), (6, 5)),  # the generator's K×K → H/2 layer after sub-pixel
    ((3, 2), "VALID", (8, 7)),  # zero padding: computed padded, then cropped
    ((2, 2), ((1, 1), (1, 1)), (5, 6)),  # 2×2: XLA's own input gradient
    ((4, 4), ((1, 2), (0, 3)), (7, 7)),  # asymmetric
    ((3, 3), ((2, 1), (2, 2)), (5, 6)),  # output larger than input: kernel gradient on the input grid
    ((3, 3), ((3, 0), (2, 2)), (6, 6)),  # padding > k − 1: falls back to XLA entirely
])
@pytest.mark.parametrize("eigen", [False, True], ids=["ynnpack-forms", "eigen-forms"])
def test_conv2d_matches_lax_conv_and_its_gradients(monkeypatch, kernel, padding, size, eigen):
  """Under both convolution libraries' forms (cpu_convolutions.eigen_convolutions_in_effect:
  unpadded convolutions stay unpadded, 2×2 input gradients use the flipped kernel)."""
  monkeypatch.setattr(cpu_convolutions, "eigen_convolutions_in_effect", lambda: eigen)
  with jax.enable_x64(True):
    rng = np.random.default_rng(sum(kernel) + sum(size))
    x = jnp.asarray(rng.normal(size=(2, *size, 3)))
    w = jnp.asarray(rng.normal(size=(*kernel, 3, 5)))
    pads = fast_conv.explicit_padding(padding, kernel)
    reference = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pads,
                                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
    fast = lambda x, w: fast_conv.conv2d(x, w, padding, impl="im2col")
    target = jnp.asarray(rng.normal(size=reference(x, w).shape))
    np.testing.assert_allclose(fast(x, w), reference(x, w), atol=1e-12)
    loss = lambda conv: lambda x, w: jnp.sum(jnp.tanh(conv(x, w)) * target)
    got = jax.grad(loss(fast), argnums=(0, 1))(x, w)
    want = jax.grad(loss(reference), argnums=(0, 1))(x, w)
    for g, w_ in zip(got, want):
      assert g.shape == w_.shape
      np.testing.assert_allclose(g, w_, atol=1e-10)


def _conv_kernel_heights(fn, *args) -> list[int]:
  """Kernel heights of the convolutions in fn's forward computation (nested jaxprs included)."""
  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "conv_general_dilated":
        yield eqn.invars[1].aval.shape[0]
      for value in eqn.params.values():
        inner = getattr(value, "jaxpr", value)  # ClosedJaxpr → Jaxpr
        if hasattr(inner, "eqns"):
          yield from walk(inner)
  return list(walk(jax.make_jaxpr(fn)(*args).jaxpr))


@pytest.mark.parametrize("kernel,padding,size", [
    ((5, 5), ((4, 4), (4, 4)), (6, 5)),  # the generator's K×K → H/2 layer: 4 of 10 rows skipped
    ((3, 3), ((2, 1), (2, 2)), (3, 6)),  # asymmetric rows: 1 of 4
    ((4, 2), ((3, 2), (0, 1)), (4, 7)),  # 2 of 6 rows, narrower output
])
def test_row_split_value_matches_lax_conv_and_its_gradients(monkeypatch, kernel, padding, size):
  """With ≥ ROW_SPLIT_MIN_SKIPPED of the output's rows beyond x's and ≥ ROW_SPLIT_MIN_CHANNELS
  input channels (set to 1 here, so 3 channels qualify), the "im2col" value is a width-only
  convolution and a sum of row-shifted maps: same value and gradients as lax.conv, float64."""
  monkeypatch.setattr(fast_conv, "ROW_SPLIT_MIN_CHANNELS", 1)
  with jax.enable_x64(True):
    rng = np.random.default_rng(sum(kernel) + sum(size) + 7)
    x = jnp.asarray(rng.normal(size=(2, *size, 3)))
    w = jnp.asarray(rng.normal(size=(*kernel, 3, 4)))
    reference = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), padding,
                                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
    fast = lambda x, w: fast_conv.conv2d(x, w, padding, impl="im2col")
    assert _conv_kernel_heights(fast, x, w) == [1]  # the row split is what ran
    np.testing.assert_allclose(fast(x, w), reference(x, w), atol=1e-12)
    target = jnp.asarray(rng.normal(size=reference(x, w).shape))
    loss = lambda conv: lambda x, w: jnp.sum(jnp.tanh(conv(x, w)) * target)
    got = jax.grad(loss(fast), argnums=(0, 1))(x, w)
    want = jax.grad(loss(reference), argnums=(0, 1))(x, w)
    for g, r in zip(got, want):
      np.testing.assert_allclose(g, r, atol=1e-10)
  monkeypatch.setattr(fast_conv, "ROW_SPLIT_MIN_CHANNELS", 4)  # 3 channels: the padded convolution
  assert _conv_kernel_heights(fast, x, w) == [kernel[0]]


def test_row_split_is_not_taken_for_a_few_extra_rows(monkeypatch):
  """The paper generator's stride-2 layer as sub-pixel convolution: 2×2, 1 extra row of 15
  (measured slower split: 46.7 against 39.5 ms at batch 64)."""
  monkeypatch.setattr(fast_conv, "ROW_SPLIT_MIN_CHANNELS", 1)
  x, w = jnp.zeros((1, 14, 14, 3)), jnp.zeros((2, 2, 3, 4))
  assert _conv_kernel_heights(lambda x, w: fast_conv.conv2d(x, w, ((1, 1), (1, 1)), "im2col"), x, w) == [2]


def _conv_paddings(fn, *args) -> list:
  """Paddings of the convolutions in fn's jaxpr (nested jaxprs included), in order."""
  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "conv_general_dilated":
        yield tuple(tuple(pair) for pair in eqn.params["padding"])
      for value in eqn.params.values():
        inner = getattr(value, "jaxpr", value)
        if hasattr(inner, "eqns"):
          yield from walk(inner)
  return list(walk(jax.make_jaxpr(fn)(*args).jaxpr))


@pytest.mark.parametrize("eigen,forward_padding", [(False, ((0, 1), (0, 1))), (True, ((0, 0), (0, 0)))])
def test_an_unpadded_convolution_is_padded_and_cropped_only_for_ynnpack(monkeypatch, eigen, forward_padding):
  """YNNPACK runs unpadded convolutions 1.3–3.4× slower than padded ones, Eigen faster
  (fast_conv._padded_conv); the 2×2 input gradient is the flipped kernel's convolution
  under Eigen and XLA's own (a transposed convolution of the pre-padded x) under YNNPACK."""
  monkeypatch.setattr(cpu_convolutions, "eigen_convolutions_in_effect", lambda: eigen)
  x, w = jnp.zeros((2, 6, 6, 3)), jnp.zeros((3, 3, 3, 4))
  assert _conv_paddings(lambda x, w: fast_conv.conv2d(x, w, "VALID", "im2col"), x, w) == [forward_padding]
  x, w = jnp.zeros((2, 5, 5, 3)), jnp.zeros((2, 2, 3, 4))
  input_gradient = lambda x, w: jax.grad(
      lambda x: jnp.sum(fast_conv.conv2d(x, w, ((1, 1), (1, 1)), "im2col")))(x)
  same, none = ((1, 1), (1, 1)), ((0, 0), (0, 0))
  # The forward pass (padded by 1), then the input gradient: under Eigen one unpadded
  # convolution of the output gradient with the flipped kernel; under YNNPACK XLA's own,
  # JAX's vjp of the pre-padded x's unpadded convolution (its primal, then its transpose,
  # padded by k − 1 = 1). The kernel gradient is matrix products, no convolution.
  assert _conv_paddings(input_gradient, x, w) == ([same, none] if eigen else [same, none, same])


def _assert_same_in_every_mode(conv, reference, x, w, rng):
  """Value, gradients, forward mode and reverse over reverse (the reconstruction prior's
  gradient norm) of conv are reference's (float64)."""
  np.testing.assert_allclose(conv(x, w), reference(x, w), atol=1e-12)
  for argnums in (0, 1, (0, 1)):
    loss = lambda conv: lambda x, w: jnp.sum(jnp.tanh(conv(x, w)))
    got = jax.grad(loss(conv), argnums)(x, w)
    want = jax.grad(loss(reference), argnums)(x, w)
    jax.tree.map(lambda g, r: np.testing.assert_allclose(g, r, atol=1e-10), got, want)
  tangents = (jnp.asarray(rng.normal(size=x.shape)), jnp.asarray(rng.normal(size=w.shape)))
  np.testing.assert_allclose(jax.jvp(conv, (x, w), tangents)[1],
                             jax.jvp(reference, (x, w), tangents)[1], atol=1e-10)
  second = lambda conv: jax.grad(
      lambda x: jnp.sum(jax.grad(lambda w: jnp.sum(jnp.sin(conv(x, w))))(w) ** 2))(x)
  np.testing.assert_allclose(second(conv), second(reference), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("batch,block", [(150, None), (64, None), (150, 16), (7, 2)])
def test_blocked_conv_matches_lax_conv_in_every_mode_of_differentiation(batch, block):
  """"blocked" (the 3×3 convolutions on CPU): value, gradients, forward mode and
  reverse over reverse (the reconstruction prior's gradient norm) are lax.conv's, with
  the batch split into blocks (150 = 64 + 64 + 22 by default at this size; 9 × 16 + 6;
  7 = 2 + 2 + 2 + 1) or not (64)."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(batch)
    x = jnp.asarray(rng.normal(size=(batch, 5, 6, 3)))
    w = jnp.asarray(rng.normal(size=(3, 3, 3, 4)))
    reference = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
    blocked = lambda x, w: fast_conv.conv2d(x, w, "SAME", impl="blocked", kernel_gradient_block=block)
    _assert_same_in_every_mode(blocked, reference, x, w, rng)


@pytest.mark.parametrize("padding,kernel_size", [("SAME", 3), ("VALID", 3), (((2, 0), (1, 1)), 3), ("SAME", 5)])
def test_few_channel_conv_matches_lax_conv_in_every_mode_of_differentiation(padding, kernel_size):
  """"blocked" with one input channel (the paper CNN's first layer on grey images): value as
  multiply-adds, tangents as patch-matrix products; value, gradients, forward mode and
  reverse over reverse are lax.conv's."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(kernel_size)
    x = jnp.asarray(rng.normal(size=(19, 7, 6, 1)))
    w = jnp.asarray(rng.normal(size=(kernel_size, kernel_size, 1, 4)))
    pads = fast_conv.explicit_padding(padding, w.shape[:2])
    reference = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pads,
                                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
    few = lambda x, w: fast_conv.conv2d(x, w, padding, impl="blocked")
    assert "custom_jvp" in str(jax.make_jaxpr(few)(x, w))  # the few-channel rule, not XLA's
    _assert_same_in_every_mode(few, reference, x, w, rng)


@pytest.mark.parametrize("impl", ["blocked", "im2col"])
@pytest.mark.parametrize("padding,kernel_size,out_channels", [
    ("SAME", 3, 1), ("VALID", 3, 3), (((2, 0), (1, 2)), 3, 2), ("SAME", 5, 1), (((0, 1), (1, 0)), 2, 3)])
def test_few_output_channel_conv_matches_lax_conv_in_every_mode_of_differentiation(
    impl, padding, kernel_size, out_channels):
  """One to three output channels (a generator's image layer): one matrix product with
  every tap's kernel slice and an overlap-add; value, gradients, forward mode and reverse
  over reverse are lax.conv's, for symmetric, zero and asymmetric paddings."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(kernel_size + out_channels)
    x = jnp.asarray(rng.normal(size=(11, 7, 6, 5)))
    w = jnp.asarray(rng.normal(size=(kernel_size, kernel_size, 5, out_channels)))
    pads = fast_conv.explicit_padding(padding, w.shape[:2])
    reference = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), pads,
                                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
    few = lambda x, w: fast_conv.conv2d(x, w, padding, impl=impl)
    jaxpr = str(jax.make_jaxpr(few)(x, w))
    assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr  # the product form
    _assert_same_in_every_mode(few, reference, x, w, rng)


def test_conv2d_takes_the_custom_gradient_only_when_asked(cpu_forms):
  """"im2col" goes through the custom rule (a custom_vjp call in the jaxpr); "blocked"
  through a custom_jvp once the batch exceeds one block; "xla" through neither; "auto"
  picks the CPU choice on a CPU with jaxinv.cpu switched on."""
  x, w = jnp.ones((1, 6, 6, 2)), jnp.ones((3, 3, 2, 4))
  jaxpr = lambda impl, x=x: str(jax.make_jaxpr(lambda w: fast_conv.conv2d(x, w, "SAME", impl))(w))
  assert "custom_vjp" in jaxpr("im2col")
  assert "custom_vjp" not in jaxpr("xla") and "custom_jvp" not in jaxpr("xla")
  assert "custom_jvp" not in jaxpr("blocked")  # one block: XLA's own program
  assert "custom_jvp" in jaxpr("blocked", jnp.ones((fast_conv.KERNEL_GRADIENT_BATCH + 1, 6, 6, 2)))
  cpu = jax.default_backend() == "cpu"
  assert fast_conv.resolve_impl("auto") == ("im2col" if cpu else "xla")
  one_device = cpu and jax.device_count() == 1  # blocks would cut across a sharded batch
  assert fast_conv.resolve_impl("auto", on_cpu="blocked") == ("blocked" if one_device else "xla")
  assert fast_conv.resolve_impl("blocked") == "blocked"


def test_default_kernel_gradient_block_keeps_blocks_at_a_pixel_budget():
  block = fast_conv.default_kernel_gradient_block
  assert block(6, 6) == block(28, 28) == fast_conv.KERNEL_GRADIENT_BATCH  # capped
  assert block(32, 32) * 32 * 32 <= fast_conv.KERNEL_GRADIENT_PIXELS < (block(32, 32) + 1) * 32 * 32
  assert block(32, 32) < block(28, 28)
  assert block(1000, 1000) == 1
  x = jnp.ones((40, 28, 28, 2))  # channels > FEW_INPUT_CHANNELS, FEW_OUTPUT_CHANNELS: blocked
  kernel_gradient = jax.grad(lambda w: jnp.sum(fast_conv.conv2d(x, w, "SAME", "blocked")))
  jaxpr = str(jax.make_jaxpr(kernel_gradient)(jnp.ones((3, 3, 2, 4))))
  assert jaxpr.count("conv_general_dilated") == 1 + -(-40 // block(28, 28))  # output + one per block


def test_conv2d_errors_name_the_fix():
  x, w = jnp.ones((1, 6, 6, 2)), jnp.ones((3, 3, 2, 4))
  with pytest.raises(ValueError, match="choose one of"):
    fast_conv.conv2d(x, w, "SAME", impl="cudnn")
  with pytest.raises(ValueError, match="non-negative padding"):
    fast_conv.conv2d(x, w, ((-1, 0), (0, 0)))
  with pytest.raises(ValueError, match="padding must be"):
    fast_conv.conv2d(x, w, "FULL")
  with pytest.raises(ValueError, match="kernel_gradient_block must be"):
    fast_conv.conv2d(x, w, "SAME", impl="blocked", kernel_gradient_block=0)


@pytest.mark.parametrize("impl,kernel,padding", [
    ("im2col", (5, 5), ((4, 4), (4, 4))),  # the generator's K×K → H/2 layer with its hot matrix
    ("im2col", (2, 2), ((1, 1), (1, 1))),  # 2×2: XLA's own input gradient of the variable channels
    ("blocked", (3, 3), "SAME"),
    ("xla", (3, 3), "SAME"),
])
def test_constant_channels_get_no_gradient_and_the_rest_is_lax_conv(impl, kernel, padding):
  """conv2d(..., constant_channels=2) is lax.conv of x with its last 2 channels under
  stop_gradient: same value, kernel gradient and input gradient of the other channels, zero
  input gradient for those 2 (float64)."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(sum(kernel) + 11)
    x = jnp.asarray(rng.normal(size=(3, 6, 5, 5)))
    w = jnp.asarray(rng.normal(size=(*kernel, 5, 4)))
    pads = fast_conv.explicit_padding(padding, kernel)

    def reference(x, w):
      x = jnp.concatenate([x[..., :3], lax.stop_gradient(x[..., 3:])], -1)
      return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    block = 2 if impl == "blocked" else None  # 2 blocks of the batch of 3
    fast = lambda x, w: fast_conv.conv2d(x, w, padding, impl=impl, kernel_gradient_block=block,
                                         constant_channels=2)
    np.testing.assert_allclose(fast(x, w), reference(x, w), atol=1e-12)
    target = jnp.asarray(rng.normal(size=reference(x, w).shape))
    loss = lambda conv: lambda x, w: jnp.sum(jnp.tanh(conv(x, w)) * target)
    x_grad, w_grad = jax.grad(loss(fast), argnums=(0, 1))(x, w)
    want_x, want_w = jax.grad(loss(reference), argnums=(0, 1))(x, w)
    np.testing.assert_allclose(w_grad, want_w, atol=1e-10)
    np.testing.assert_allclose(x_grad, want_x, atol=1e-10)
    assert np.all(np.asarray(x_grad[..., 3:]) == 0) and np.abs(np.asarray(x_grad[..., :3])).max() > 0


def test_constant_channels_must_leave_a_variable_channel():
  x, w = jnp.zeros((1, 4, 4, 3)), jnp.zeros((3, 3, 3, 2))
  for bad in (-1, 3):
    with pytest.raises(ValueError, match=r"constant_channels must be in \[0, 3\)"):
      fast_conv.conv2d(x, w, "SAME", "im2col", constant_channels=bad)
