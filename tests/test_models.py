import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import conditioning
from jaxinv.cpu import layers as cpu_layers
from jaxinv.models import classifiers, layers
from jaxinv.models.generator import ConditionedGenerator, UPSAMPLE_KINDS
from jaxinv.cpu.layers import SubPixelConvTranspose
from jaxinv.models.layers import max_pool_2x2

import flax.linen as nn


@pytest.mark.parametrize("mode,upsample,shape", [
    *itertools.product(conditioning.MODES, UPSAMPLE_KINDS, [(28, 28, 1)]),
    *[(m, "resize", (32, 32, 3)) for m in conditioning.MODES],
    ("vector_matrix", "transpose", (32, 32, 3)),
])
def test_generator_shapes_and_range(mode, upsample, shape):
  gen = ConditionedGenerator(num_classes=10, image_shape=shape, mode=mode, width=8,
                             latent_dim=16, embed_dim=8, upsample=upsample)
  batch = conditioning.sample_batch(jax.random.key(0), 6, 10, 16, mode)
  variables = gen.init({"params": jax.random.key(1)}, batch["z"], batch["p"], batch["y"])
  # Large parameters push tanh into saturation: the range must still hold.
  big = jax.tree.map(lambda x: x * 50.0, variables)
  for v in (variables, big):
    images = gen.apply(v, batch["z"], batch["p"], batch["y"], train=False)
    assert images.shape == (6, *shape)
    assert images.dtype == jnp.float32
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0
  train_images, _ = gen.apply(variables, batch["z"], batch["p"], batch["y"], train=True,
                              rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
  assert train_images.shape == (6, *shape)


def test_generator_uses_the_conditioning():
  gen = ConditionedGenerator(num_classes=10, image_shape=(28, 28, 1), width=8, latent_dim=16)
  z = jnp.zeros((2, 16))
  y = jnp.array([1, 7])
  p = conditioning.one_hot(y, 10)
  variables = gen.init({"params": jax.random.key(0)}, z, p, y)
  images = gen.apply(variables, z, p, y)
  assert float(jnp.abs(images[0] - images[1]).max()) > 1e-4


def test_transposed_generator_gradients_match_xla_convolutions():
  """The transposed generator with the CPU convolutions ("im2col": the K×K → H/2 layer's hot
  matrix channel a constant, whose input gradient is not computed) has the parameter
  gradients of the same generator on XLA's own convolutions (float64, dropout on)."""
  with jax.enable_x64(True):
    batch = conditioning.sample_batch(jax.random.key(0), 4, 4, 16, "vector_matrix")
    batch = jax.tree.map(lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, batch)
    grads = {}
    for impl in ("im2col", "xla"):
      # 4 classes, 12 px: the K×K → H/2 layer is 3×3, 4 → 6 px ("full" padding).
      gen = ConditionedGenerator(num_classes=4, image_shape=(12, 12, 1), width=8, latent_dim=16,
                                 embed_dim=8, upsample="transpose", conv_impl=impl)
      variables = gen.init({"params": jax.random.key(1)}, batch["z"], batch["p"], batch["y"])

      def loss(params):
        images, _ = gen.apply({**variables, "params": params}, batch["z"], batch["p"], batch["y"],
                              train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"])
        return jnp.sum(jnp.sin(3.0 * images))

      params = jax.tree.map(lambda x: x.astype(jnp.float64), variables["params"])
      grads[impl] = jax.jit(jax.grad(loss))(params)
    assert grads["im2col"]["up0"]["kernel"].shape[2] == 2 * 8 + 1  # features + the hot matrix
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12), grads["im2col"], grads["xla"])
    assert float(jnp.abs(grads["im2col"]["project"]["kernel"]).max()) > 0


def test_generator_mode_and_shape_errors():
  with pytest.raises(ValueError, match="generator mode"):
    ConditionedGenerator(10, (28, 28, 1), mode="nope").init(
        jax.random.key(0), jnp.zeros((1, 100)), jnp.zeros((1, 10)), jnp.zeros((1,), jnp.int32))
  with pytest.raises(ValueError, match="latent_dim"):
    ConditionedGenerator(10, (28, 28, 1), latent_dim=100).init(
        jax.random.key(0), jnp.zeros((1, 7)), jnp.zeros((1, 10)), jnp.zeros((1,), jnp.int32))


@pytest.mark.parametrize("name,shape", [("mlp", (28, 28, 1)), ("cnn", (28, 28, 1)),
                                        ("cnn", (32, 32, 3)), ("resnet", (32, 32, 3))])
def test_classifiers_return_logits_and_penultimate(name, shape):
  model = classifiers.build_classifier(name, 10)
  x = jax.random.uniform(jax.random.key(0), (3, *shape), minval=-1, maxval=1)
  variables = model.init(jax.random.key(1), x)
  logits, aux = model.apply(variables, x, train=False)
  assert logits.shape == (3, 10)
  assert aux["penultimate"].ndim == 2 and aux["penultimate"].shape[0] == 3
  (train_logits, _), _ = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(2)},
                                     mutable=["batch_stats"])
  assert train_logits.shape == (3, 10)


def test_unknown_classifier_is_named():
  with pytest.raises(ValueError, match="classifier.model"):
    classifiers.build_classifier("vit", 10)


def test_max_pool_2x2_matches_flax_max_pool():
  x = jax.random.normal(jax.random.key(0), (2, 7, 8, 3))
  reference = nn.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
  np.testing.assert_allclose(max_pool_2x2(x), reference)
  g = jax.grad(lambda v: (max_pool_2x2(v) ** 2).sum())(x)
  g_ref = jax.grad(lambda v: (nn.max_pool(v, (2, 2), strides=(2, 2), padding="VALID") ** 2).sum())(x)
  np.testing.assert_allclose(g, g_ref, rtol=1e-6)


def test_max_pool_2x2_ties_and_fused_producers_match_flax():
  """Ties (flat image backgrounds) give the whole gradient to the first maximal element,
  as Flax does; and the gradient survives XLA fusing a batch norm into the pool, which
  broke a `max`-reduction pool (its gradient compares recomputed values for equality)."""
  x = jnp.zeros((1, 2, 2, 1)).at[0, 1, 1, 0].set(-1.0)  # three tied maxima
  g = jax.grad(lambda v: max_pool_2x2(v).sum())(x)
  g_ref = jax.grad(lambda v: nn.max_pool(v, (2, 2), strides=(2, 2)).sum())(x)
  np.testing.assert_array_equal(g, g_ref)
  assert float(g.sum()) == 1.0

  images = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 12, 12, 2)))
  kernel = jnp.asarray(np.random.default_rng(1).normal(0, 0.3, (3, 3, 2, 4)), jnp.float32)

  def net(k, pool):
    h = jax.lax.conv_general_dilated(images, k, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = (h - h.mean(axis=(0, 1, 2))) / jnp.sqrt(h.var(axis=(0, 1, 2)) + 1e-5)
    return jnp.sum(jnp.sin(pool(h)))

  flax_pool = lambda h: nn.max_pool(h, (2, 2), strides=(2, 2))
  g = jax.jit(jax.grad(net), static_argnums=1)(kernel, max_pool_2x2)
  g_ref = jax.jit(jax.grad(net), static_argnums=1)(kernel, flax_pool)
  np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4)


def test_max_pool_2x2_forward_mode_second_order_and_vmap_match_flax():
  """jvp, reverse over reverse (the reconstruction prior's gradient norm) and vmap over
  odd-sized inputs with ties give Flax's numbers."""
  rng = np.random.default_rng(2)
  x = jnp.asarray(np.round(rng.normal(size=(3, 2, 7, 5, 3)) * 2) / 2)  # ties, odd sizes
  tangent = jnp.asarray(rng.normal(size=x.shape[1:]))
  flax_pool = lambda v: nn.max_pool(v, (2, 2), strides=(2, 2))
  for pool_fn in (max_pool_2x2, flax_pool):
    assert pool_fn(x[0]).shape == (2, 3, 2, 3)
  out, jvp_out = jax.jvp(max_pool_2x2, (x[0],), (tangent,))
  ref, jvp_ref = jax.jvp(flax_pool, (x[0],), (tangent,))
  np.testing.assert_array_equal(out, ref)
  np.testing.assert_array_equal(jvp_out, jvp_ref)
  assert np.abs(np.asarray(jvp_out)).sum() > 0

  weights = jnp.asarray(rng.normal(size=(3,)))

  def gradient_norm(pool, w, v):  # ‖∂L/∂w‖², then differentiated w.r.t. w and v
    inner = jax.grad(lambda w_: jnp.sum(jnp.sin(pool(v * w_))))(w)
    return jnp.sum(inner ** 2)

  for argnum in (0, 1):
    mine = jax.grad(lambda w, v: gradient_norm(max_pool_2x2, w, v), argnum)(weights, x[0])
    theirs = jax.grad(lambda w, v: gradient_norm(flax_pool, w, v), argnum)(weights, x[0])
    np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-7)
  per_member = jax.vmap(jax.grad(lambda v: jnp.sum(jnp.cos(max_pool_2x2(v)))))(x)
  reference = jnp.stack([jax.grad(lambda v: jnp.sum(jnp.cos(flax_pool(v))))(v) for v in x])
  np.testing.assert_array_equal(per_member, reference)


@pytest.mark.parametrize("impl", ["blocked", "xla", "im2col"])
def test_conv_module_is_flax_conv_with_the_same_parameters(impl):
  """cpu.layers.Conv (the paper CNN's convolutions) initialises the same parameters under the
  same names as nn.Conv, so checkpoints made before it load, and computes the same."""
  x = jax.random.normal(jax.random.key(0), (70, 6, 6, 3))
  for use_bias in (False, True):
    mine = cpu_layers.Conv(5, (3, 3), use_bias=use_bias, impl=impl)
    theirs = nn.Conv(5, (3, 3), padding="SAME", use_bias=use_bias)
    params = mine.init(jax.random.key(1), x)
    reference = theirs.init(jax.random.key(1), x)
    jax.tree.map(np.testing.assert_array_equal, params, reference)
    np.testing.assert_allclose(mine.apply(params, x), theirs.apply(params, x), rtol=1e-5, atol=1e-5)
    if impl == "xla":  # nn.Conv's own operation (what "auto" takes off a single CPU)
      np.testing.assert_array_equal(mine.apply(params, x), theirs.apply(params, x))
    loss = lambda module: lambda p: jnp.sum(jnp.tanh(module.apply(p, x)))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
                 jax.grad(loss(mine))(params), jax.grad(loss(theirs))(params))
  cnn = classifiers.PaperCNN(10, conv_impl=impl).init(jax.random.key(2), x[:1, :, :, :1])
  assert set(cnn["params"]["conv0"]) == {"kernel"}


@pytest.mark.parametrize("impl", ["blocked", "xla", "im2col", "auto"])
def test_upsample_conv_is_flax_conv_of_the_upsampled_map(impl, cpu_forms):  # "auto": the CPU form
  """cpu.layers.UpsampleConv (the resize generator's H/2 → H layer) = nn.Conv 3×3 'SAME' of the
  nearest-upsampled map: same parameters under the same names, same values and gradients
  (input and kernel) in float64, odd sizes and a batch over one kernel-gradient block."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(11, 5, 4, 3)))
    for use_bias in (False, True):
      mine = cpu_layers.UpsampleConv(4, use_bias=use_bias, impl=impl)
      theirs = nn.Conv(4, (3, 3), padding="SAME", use_bias=use_bias, param_dtype=jnp.float64)
      up = cpu_layers.upsample_nearest_2x(x)
      reference = theirs.init(jax.random.key(1), up)
      assert jax.tree.map(jnp.shape, mine.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, reference)
      params = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)), reference)
      out = mine.apply(params, x)
      assert out.shape == (11, 10, 8, 4)
      np.testing.assert_allclose(out, theirs.apply(params, up), rtol=1e-12, atol=1e-12)
      target = jnp.asarray(rng.normal(size=out.shape))
      loss = lambda apply: lambda p, x: jnp.sum(jnp.sin(apply(p, x)) * target)
      ours = jax.grad(loss(mine.apply), argnums=(0, 1))(params, x)
      flax_grads = jax.grad(loss(lambda p, x: theirs.apply(p, cpu_layers.upsample_nearest_2x(x))),
                            argnums=(0, 1))(params, x)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10), ours, flax_grads)
  # float32 initialisation: the same parameters as nn.Conv's under the same key.
  x32 = jnp.ones((2, 5, 5, 3))
  jax.tree.map(np.testing.assert_array_equal, cpu_layers.UpsampleConv(4, impl=impl).init(jax.random.key(2), x32),
               nn.Conv(4, (3, 3), use_bias=False).init(jax.random.key(2), cpu_layers.upsample_nearest_2x(x32)))


def test_sampling_keeps_dropout_and_is_reproducible():
  from jaxinv import sampling
  generator = ConditionedGenerator(num_classes=10, image_shape=(28, 28, 1), width=4, dropout_rate=0.3)
  z, p, y = jnp.zeros((2, 100)), jnp.full((2, 10), 0.1), jnp.zeros((2,), jnp.int32)
  variables = generator.init(jax.random.key(0), z, p, y)
  labels = sampling.labels_for(3, [2, 7])
  key = jax.random.key(5)
  first = sampling.sample(generator, variables, labels, key, batch_size=4)
  again = sampling.sample(generator, variables, labels, key, batch_size=4)
  no_dropout = sampling.sample(generator, variables, labels, key, batch_size=4, dropout=False)
  assert first.shape == (6, 28, 28, 1)
  np.testing.assert_array_equal(first, again)  # same key, same images
  assert not np.allclose(first, no_dropout)  # dropout is active at sampling by default
  # The first chunk's images do not depend on how many come after them.
  np.testing.assert_array_equal(sampling.sample(generator, variables, labels[:4], key, batch_size=4),
                                first[:4])


@pytest.mark.parametrize("kernel,strides,padding,size", [
  ((4, 4), (2, 2), "SAME", (7, 6)),  # the generator's H/2 → H layer
  ((5, 5), (1, 1), "VALID", (5, 5)),  # the generator's K×K → H/2 layer
  ((3, 3), (2, 2), "SAME", (4, 5)),  # kernel not divisible by stride
  ((4, 3), (2, 1), "VALID", (3, 4)),
  ((3, 3), (3, 3), "SAME", (3, 3)),
])
@pytest.mark.parametrize("impl", ["im2col", "xla"])
def test_subpixel_conv_transpose_matches_flax_conv_transpose(kernel, strides, padding, size, impl):
  """Same parameters, outputs and gradients (w.r.t. input and kernel) as
  nn.ConvTranspose on random inputs, in float64 so that only the summation order
  may differ."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(sum(kernel) + sum(strides))
    x = jnp.asarray(rng.normal(size=(2, *size, 3)))
    kwargs = dict(features=4, kernel_size=kernel, strides=strides, padding=padding)
    reference = nn.ConvTranspose(**kwargs, param_dtype=jnp.float64)
    fast = SubPixelConvTranspose(**kwargs, impl=impl)
    variables = reference.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, fast.init(jax.random.key(0), x)) == jax.tree.map(jnp.shape, variables)
    variables = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)), variables)
    target = jnp.asarray(rng.normal(size=reference.apply(variables, x).shape))

    def loss(module):
      return lambda v, x: jnp.sum(jnp.tanh(module.apply(v, x)) * target)

    np.testing.assert_allclose(fast.apply(variables, x), reference.apply(variables, x), atol=1e-12)
    got = jax.grad(loss(fast), argnums=(0, 1))(variables, x)
    want = jax.grad(loss(reference), argnums=(0, 1))(variables, x)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(g, w, atol=1e-10)


def test_subpixel_conv_transpose_rejects_uneven_phases():
  x = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(ValueError, match="divide by stride"):
    SubPixelConvTranspose(3, (5, 5), (2, 2), padding="VALID").init(jax.random.key(0), x)


@pytest.mark.parametrize("keep", [0.7, 0.25, 4 / 65536])
def test_keep_mask_is_bernoulli_at_the_rounded_rate_in_every_field(keep):
  """Each of the four 16-bit fields a hash yields, and each example, keeps at the rate;
  neighbouring fields and examples are uncorrelated (a reused hash would correlate them)."""
  mask, p = layers.keep_mask(jax.random.key(3), keep, (4096, 3, 7, 5))
  assert mask.shape == (4096, 3, 7, 5) and mask.dtype == jnp.bool_
  assert float(p) == round(keep * 65536) / 65536
  flat = np.asarray(mask, np.float64).reshape(4096, -1)
  for field in range(4):  # entries j ≡ field (mod 4) come from the same 16 bits of a hash
    column = flat[:, field::4]
    assert abs(column.mean() - float(p)) < 5 * np.sqrt(float(p) * (1 - float(p)) / column.size) + 1e-12
  if 0.1 < keep < 0.9:
    assert abs(np.corrcoef(flat[:, :-1].ravel(), flat[:, 1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(flat[:-1].ravel(), flat[1:].ravel())[0, 1]) < 0.01
  other, _ = layers.keep_mask(jax.random.key(4), keep, (4096, 3, 7, 5))
  assert keep < 0.01 or not np.array_equal(np.asarray(mask), np.asarray(other))


def test_keep_mask_edges_vmap_and_other_key_kinds():
  key = jax.random.key(0)
  assert bool(jnp.all(layers.keep_mask(key, 1.0, (8, 9))[0]))
  assert not bool(jnp.any(layers.keep_mask(key, 0.0, (8, 9))[0]))
  raw = jax.random.PRNGKey(0)  # raw uint32[2] keys draw the same masks as typed ones
  np.testing.assert_array_equal(layers.keep_mask(raw, 0.5, (8, 9))[0], layers.keep_mask(key, 0.5, (8, 9))[0])
  masks, probs = jax.vmap(lambda k, r: layers.keep_mask(k, 1 - r, (3000, 4)))(
      jax.random.split(key, 3), jnp.array([0.1, 0.5, 0.9]))  # an ensemble's traced rates
  np.testing.assert_allclose(probs, [0.9, 0.5, 0.1], atol=1 / 65536)
  np.testing.assert_allclose(masks.mean(axis=(1, 2)), probs, atol=0.03)
  rbg = jax.random.key(0, impl="rbg")  # not Threefry's two words: jax.random.bernoulli
  mask, p = layers.keep_mask(rbg, 0.5, (8, 9))
  np.testing.assert_array_equal(mask, jax.random.bernoulli(rbg, 0.5, (8, 9)))
  assert float(p) == 0.5


def test_rate_dropout_scales_kept_units_by_the_inverse_keep_rate():
  x = jnp.full((64, 6, 6, 4), 2.0)
  module = layers.RateDropout()
  out = module.apply({}, x, 0.3, False, rngs={"dropout": jax.random.key(5)})
  values = np.unique(np.asarray(out))
  keep = round(0.7 * 65536) / 65536
  np.testing.assert_allclose(values, [0.0, 2.0 / keep], rtol=1e-6)
  assert abs(float(jnp.mean(out == 0)) - 0.3) < 5 * np.sqrt(0.21 / x.size)
  np.testing.assert_array_equal(module.apply({}, x, 0.3, True), x)  # deterministic: identity
  assert not bool(jnp.any(module.apply({}, x, 1.0, False, rngs={"dropout": jax.random.key(5)})))


def test_sampling_draws_the_vectors_at_the_generators_temperature():
  from jaxinv import sampling

  gen = ConditionedGenerator(num_classes=10, image_shape=(28, 28, 1), mode="vector", width=8,
                             latent_dim=16, embed_dim=8, temperature=0.1)
  batch = conditioning.sample_batch(jax.random.key(0), 4, 10, 16, "vector")
  variables = gen.init({"params": jax.random.key(1)}, batch["z"], batch["p"], batch["y"])
  labels = np.arange(10)
  key = jax.random.key(2)
  images = sampling.sample(gen, variables, labels, key, batch_size=10, dropout=False)
  # Chunk 0 draws its batch from fold_in(key, 0), its vectors at temperature 0.1.
  sharp = conditioning.batch_for_labels(jax.random.fold_in(key, 0), labels, 10, 16, "vector", 0.1)
  expected = gen.apply(variables, sharp["z"], sharp["p"], sharp["y"], train=False, dropout=False)
  np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-5)
  at_one = sampling.sample(gen.clone(temperature=1.0), variables, labels, key, batch_size=10,
                           dropout=False)
  assert np.abs(at_one - images).max() > 1e-3  # a vector-mode generator sees the temperature
