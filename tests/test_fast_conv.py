"""fast_conv.conv2d computes lax.conv_general_dilated's function and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxinv.models import fast_conv


@pytest.mark.parametrize("kernel,padding,size", [
    ((3, 3), "SAME", (9, 9)),
    ((5, 5), ((4, 4), (4, 4)), (6, 5)),  # the generator's K×K → H/2 layer after sub-pixel
    ((3, 2), "VALID", (8, 7)),  # zero padding: computed padded, then cropped
    ((2, 2), ((1, 1), (1, 1)), (5, 6)),  # 2×2: XLA's own input gradient
    ((4, 4), ((1, 2), (0, 3)), (7, 7)),  # asymmetric
    ((3, 3), ((2, 1), (2, 2)), (5, 6)),  # output larger than input: kernel gradient on the input grid
    ((3, 3), ((3, 0), (2, 2)), (6, 6)),  # padding > k − 1: falls back to XLA entirely
])
def test_conv2d_matches_lax_conv_and_its_gradients(kernel, padding, size):
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


def test_conv2d_takes_the_custom_gradient_only_when_asked():
  """"im2col" goes through the custom rule (a custom_vjp call in the jaxpr); "xla"
  does not; "auto" picks im2col on CPU."""
  x, w = jnp.ones((1, 6, 6, 2)), jnp.ones((3, 3, 2, 4))
  jaxpr = lambda impl: str(jax.make_jaxpr(lambda w: fast_conv.conv2d(x, w, "SAME", impl))(w))
  assert "custom_vjp" in jaxpr("im2col")
  assert "custom_vjp" not in jaxpr("xla")
  assert fast_conv.resolve_impl("auto") == ("im2col" if jax.default_backend() == "cpu" else "xla")


def test_conv2d_errors_name_the_fix():
  x, w = jnp.ones((1, 6, 6, 2)), jnp.ones((3, 3, 2, 4))
  with pytest.raises(ValueError, match="choose one of"):
    fast_conv.conv2d(x, w, "SAME", impl="cudnn")
  with pytest.raises(ValueError, match="non-negative padding"):
    fast_conv.conv2d(x, w, ((-1, 0), (0, 0)))
  with pytest.raises(ValueError, match="padding must be"):
    fast_conv.conv2d(x, w, "FULL")
