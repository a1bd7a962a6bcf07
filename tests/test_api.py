"""The public API: any classifier in, a trained generator out (jaxinv/__init__.py)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxinv
from jaxinv import data

SHAPE = (28, 28, 1)


class LogitsOnlyMLP(nn.Module):
  """A user's model: logits only, batch norm and dropout, no `train` argument."""

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.BatchNorm(use_running_average=False, momentum=0.9)(nn.Dense(64)(x)))
    x = nn.Dropout(0.2, deterministic=False)(x)
    return nn.Dense(10)(x)


@pytest.fixture(scope="module")
def digits():
  return data.load("digits", "train")


@pytest.fixture(scope="module")
def linen_classifier(digits):
  """LogitsOnlyMLP trained for 300 Adam steps, batch statistics updated as Flax does."""
  x, y = digits
  model = LogitsOnlyMLP()
  variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x[:2])
  tx = optax.adam(2e-3)
  opt_state = tx.init(variables["params"])

  @jax.jit
  def step(variables, opt_state, xb, yb, key):
    def loss_fn(params):
      logits, updates = model.apply({**variables, "params": params}, xb, mutable=["batch_stats"],
                                    rngs={"dropout": key})
      return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean(), updates
    (_, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
    delta, opt_state = tx.update(grads, opt_state)
    return {"params": optax.apply_updates(variables["params"], delta), **updates}, opt_state

  rng = np.random.default_rng(0)
  for i in range(300):
    idx = rng.integers(0, len(x), 64)
    variables, opt_state = step(variables, opt_state, x[idx], y[idx], jax.random.key(i))
  return model, variables


def _mlp_function(digits):
  """A pure-function classifier: a 2-layer MLP trained with optax, returning
  `(logits, hidden)`."""
  x, y = digits
  k1, k2 = jax.random.split(jax.random.key(3))
  params = {"w1": jax.random.normal(k1, (784, 64)) * 0.05, "b1": jnp.zeros(64),
            "w2": jax.random.normal(k2, (64, 10)) * 0.1, "b2": jnp.zeros(10)}

  def fn(p, images):
    h = jax.nn.relu(images.reshape(images.shape[0], -1) @ p["w1"] + p["b1"])
    return h @ p["w2"] + p["b2"], h

  tx = optax.adam(2e-3)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, xb, yb):
    grads = jax.grad(lambda p: optax.softmax_cross_entropy_with_integer_labels(
        fn(p, xb)[0], yb).mean())(params)
    delta, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, delta), opt_state

  rng = np.random.default_rng(1)
  for _ in range(300):
    idx = rng.integers(0, len(x), 64)
    params, opt_state = step(params, opt_state, x[idx], y[idx])
  return fn, params


def _small_inversion(classifier, steps=600, **kwargs):
  generator = jaxinv.paper_generator(10, SHAPE, width=8, dropout_rate=0.1)
  return jaxinv.make_inversion(classifier, SHAPE, generator=generator, steps=steps,
                               learning_rate=5e-3, beta=8.0, **kwargs)


def _target_accuracy_per_class(inversion, state, classifier):
  labels = np.repeat(np.arange(10), 100)
  images = jaxinv.sample(inversion, state, labels, jax.random.key(1))
  assert images.shape == (1000, *SHAPE) and np.all(np.abs(images) <= 1)
  pred = np.asarray(jax.jit(classifier.apply_fn)(classifier.params, images)[0].argmax(-1))
  return np.array([np.mean(pred[labels == c] == c) for c in range(10)])


def test_a_users_linen_model_inverts_to_99_percent_on_every_class(linen_classifier, digits):
  model, variables = linen_classifier
  classifier = jaxinv.from_linen(model, variables)
  x_test, y_test = data.load("digits", "test")
  test_pred = jax.jit(classifier.apply_fn)(variables, x_test)[0].argmax(-1)
  assert np.mean(np.asarray(test_pred) == y_test) > 0.9  # inference mode: running statistics
  inversion = _small_inversion(classifier)
  state, history = jaxinv.fit(inversion, jax.random.key(0), steps=600, progress=False)
  assert history[-1][0] == 600
  accuracy = _target_accuracy_per_class(inversion, state, classifier)
  assert accuracy.min() >= 0.99, accuracy


def test_a_pure_function_classifier_inverts_to_99_percent_on_every_class(digits):
  classifier = jaxinv.from_function(*_mlp_function(digits))
  inversion = _small_inversion(classifier)
  state, _ = jaxinv.fit(inversion, jax.random.key(0), steps=600, progress=False)
  accuracy = _target_accuracy_per_class(inversion, state, classifier)
  assert accuracy.min() >= 0.99, accuracy


def test_linen_adapter_runs_in_inference_mode(linen_classifier):
  model, variables = linen_classifier
  classifier = jaxinv.from_linen(model, variables)
  x = jax.random.uniform(jax.random.key(0), (8, *SHAPE), minval=-1, maxval=1)
  logits, aux = classifier.apply_fn(variables, x)
  again, _ = classifier.apply_fn(variables, x)
  alone, _ = classifier.apply_fn(variables, x[:1])
  np.testing.assert_array_equal(logits, again)  # no dropout
  np.testing.assert_allclose(logits[:1], alone, rtol=1e-5, atol=1e-5)  # running statistics
  assert aux["features"].shape == (8, 64)  # default: the input of the last dense layer
  by_path = jaxinv.from_linen(model, variables, features="Dense_0")
  assert by_path.apply_fn(variables, x)[1]["features"].shape == (8, 64)


def test_linen_adapter_takes_train_flags_and_returned_features():
  class WithFlag(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = True):
      h = nn.Dense(5)(x.reshape(x.shape[0], -1))
      h = nn.Dropout(0.5, deterministic=not train)(h)
      return nn.Dense(3)(h), {"embedding": h, "other": h * 2}

  model = WithFlag()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)), train=False)
  x = jnp.ones((2, 4, 4, 1))
  classifier = jaxinv.from_linen(model, variables, features="other")
  _, aux = classifier.apply_fn(variables, x)
  expected = model.apply(variables, x, train=False)[1]["other"]
  np.testing.assert_allclose(aux["features"], expected)
  with pytest.raises(ValueError, match="pick one with features=NAME"):
    jaxinv.from_linen(model, variables).apply_fn(variables, x)


def test_nnx_adapter_uses_eval_mode_and_the_last_linear_input():
  class Net(nnx.Module):
    def __init__(self, rngs):
      self.hidden = nnx.Linear(16, 8, rngs=rngs)
      self.norm = nnx.BatchNorm(8, rngs=rngs)
      self.dropout = nnx.Dropout(0.5, rngs=rngs)
      self.head = nnx.Linear(8, 3, rngs=rngs)

    def __call__(self, x):
      h = self.dropout(nnx.relu(self.norm(self.hidden(x.reshape(x.shape[0], -1)))))
      return self.head(h)

  net = Net(nnx.Rngs(0))
  classifier = jaxinv.from_nnx(net)
  x = jax.random.normal(jax.random.key(1), (5, 4, 4, 1))
  logits, aux = jax.jit(classifier.apply_fn)(classifier.params, x)
  again, _ = jax.jit(classifier.apply_fn)(classifier.params, x)
  np.testing.assert_array_equal(logits, again)
  assert aux["features"].shape == (5, 8)
  net.eval()
  np.testing.assert_allclose(logits, net(x), rtol=1e-5, atol=1e-6)


def test_input_spec_maps_range_normalisation_layout_and_dtype():
  spec = jaxinv.InputSpec(value_range=(0, 255), mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0),
                          layout="NCHW", dtype=jnp.bfloat16)
  seen = []
  classifier = jaxinv.from_function(lambda p, x: (seen.append(x) or jnp.zeros((x.shape[0], 2))),
                                    None, inputs=spec)
  images = np.random.default_rng(0).uniform(-1, 1, (2, 4, 4, 3)).astype(np.float32)
  classifier.apply_fn(None, jnp.asarray(images))
  expected = ((images + 1) * 127.5 - np.array([10, 20, 30])) / np.array([2, 4, 5])
  assert seen[0].dtype == jnp.bfloat16 and seen[0].shape == (2, 3, 4, 4)
  np.testing.assert_allclose(np.asarray(seen[0], np.float32), expected.transpose(0, 3, 1, 2),
                             rtol=1e-2)


def _classifier_of(fn, params=None):
  return jaxinv.from_function(fn, params)


def test_bad_classifiers_are_named_before_any_step_compiles():
  flat = lambda p, x: x.reshape(x.shape[0], -1) @ p
  params = jnp.zeros((784, 10))
  with pytest.raises(ValueError, match="scores 10 classes but num_classes=7"):
    jaxinv.make_inversion(_classifier_of(flat, params), SHAPE, num_classes=7)
  with pytest.raises(ValueError, match=r"fails on a batch of \(32, 32, 3\) images"):
    jaxinv.make_inversion(_classifier_of(flat, params), (32, 32, 3))
  with pytest.raises(ValueError, match="logits of shape"):
    jaxinv.make_inversion(_classifier_of(lambda p, x: x.mean(), None), SHAPE)
  with pytest.raises(ValueError, match="non-finite logits"):
    jaxinv.make_inversion(_classifier_of(lambda p, x: flat(p, x) / 0.0, params + 1.0), SHAPE)
  two_channel_norm = jaxinv.InputSpec(value_range=(0, 1), mean=(0.5, 0.5), std=(0.2, 0.2))
  with pytest.raises(ValueError, match="mean has 2 values but the images have 1 channel"):
    jaxinv.make_inversion(jaxinv.from_function(flat, params, inputs=two_channel_norm), SHAPE)
  with pytest.raises(ValueError, match="layout='NWHC'"):
    jaxinv.from_function(flat, params, inputs=jaxinv.InputSpec(layout="NWHC"))
  with pytest.raises(TypeError, match="from_function"):
    jaxinv.from_linen(flat, {"params": params})


def test_a_missing_feature_path_lists_the_valid_ones(linen_classifier):
  model, variables = linen_classifier
  with pytest.raises(ValueError, match="module paths: BatchNorm_0, Dense_0, Dense_1, Dropout_0"):
    jaxinv.make_inversion(jaxinv.from_linen(model, variables, features="encoder/pool"), SHAPE)


def _tiny_inversion(classifier, **kwargs):
  generator = jaxinv.paper_generator(10, SHAPE, width=4)
  return jaxinv.make_inversion(classifier, SHAPE, generator=generator, batch_size=8, steps=4,
                               **kwargs)


def test_step_vmaps_over_seeds_like_separate_runs(digits):
  inversion = _tiny_inversion(jaxinv.from_function(*_mlp_function(digits)))
  keys = jnp.stack([jax.random.key(5), jax.random.key(6)])
  states = jax.jit(jax.vmap(inversion.init))(keys)  # compiled: eager vmap runs op by op
  states, metrics = jax.jit(jax.vmap(inversion.step))(states, keys)
  assert metrics["loss"].shape == (2,)
  alone, alone_metrics = jax.jit(inversion.step)(inversion.init(keys[1]), keys[1])
  np.testing.assert_allclose(metrics["loss"][1], alone_metrics["loss"], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(states.generator.params), jax.tree.leaves(alone.generator.params)):
    np.testing.assert_allclose(a[1], b, rtol=1e-4, atol=1e-4)  # 1/20 of an Adam step (±lr)


def test_steps_scan_like_a_python_loop(digits):
  inversion = _tiny_inversion(jaxinv.from_function(*_mlp_function(digits)))
  key = jax.random.key(0)

  @jax.jit
  def scanned(state):
    return jax.lax.scan(lambda s, _: inversion.step(s, key), state, None, length=3)

  state_scan, metrics = scanned(inversion.init(key))
  state = inversion.init(key)
  step = jax.jit(inversion.step)
  for _ in range(3):
    state, last = step(state, key)
  assert metrics["loss"].shape == (3,)
  np.testing.assert_allclose(metrics["loss"][-1], last["loss"], rtol=1e-5)
  assert int(state_scan.generator.step) == 3
  for a, b in zip(jax.tree.leaves(state_scan.generator.params), jax.tree.leaves(state.generator.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)  # 1/20 of an Adam step (±lr)


def test_fit_resumes_exactly_from_its_checkpoints(tmp_path, digits):
  classifier = jaxinv.from_function(*_mlp_function(digits))
  inversion = _tiny_inversion(classifier)
  key = jax.random.key(2)
  straight, _ = jaxinv.fit(inversion, key, steps=6, progress=False)
  jaxinv.fit(inversion, key, steps=3, checkpoint_dir=tmp_path / "ckpt", save_every=3,
             progress=False)
  resumed, history = jaxinv.fit(inversion, key, steps=6, checkpoint_dir=tmp_path / "ckpt",
                                save_every=3, log_every=1, progress=False)
  assert [step for step, _ in history] == [4, 5, 6]  # only the steps after the checkpoint ran
  for a, b in zip(jax.tree.leaves(straight.generator), jax.tree.leaves(resumed.generator)):
    np.testing.assert_array_equal(a, b)


def test_saved_generator_loads_and_samples_the_same_images(tmp_path, digits):
  inversion = _tiny_inversion(jaxinv.from_function(*_mlp_function(digits)))
  state, _ = jaxinv.fit(inversion, jax.random.key(0), steps=2, progress=False)
  jaxinv.save_generator(tmp_path / "gen", inversion, state)
  generator, variables = jaxinv.load_generator(tmp_path / "gen")
  assert generator == inversion.generator
  labels = [0, 3, 9]
  np.testing.assert_array_equal(jaxinv.sample(inversion, state, labels, jax.random.key(4)),
                                jaxinv.sample(generator, variables, labels, jax.random.key(4)))
  with pytest.raises(FileNotFoundError, match="generator.json"):
    jaxinv.load_generator(tmp_path / "nothing")


def test_ensemble_members_train_in_one_program(digits):
  inversion = _tiny_inversion(jaxinv.from_function(*_mlp_function(digits)),
                              members=[jaxinv.Member(seed, 1.0, 4.0, 1.0, 1.0, 0.2) for seed in (0, 1)])
  keys = jaxinv.ensemble_keys(inversion.members)
  state, metrics = inversion.jit_step()(inversion.jit_init()(keys), keys)
  assert "loss/0" in metrics and "loss/1" in metrics
  assert jax.tree.leaves(state.generator.params)[0].shape[0] == 2
  with pytest.raises(ValueError, match="ensemble"):
    jaxinv.sample(inversion, state, [0], jax.random.key(0))
