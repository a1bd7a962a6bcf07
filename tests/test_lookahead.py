"""jaxinv.lookahead and the classifier's airbench-style SGD recipe (runs.classifier)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxinv import lookahead
from jaxinv import config as config_lib
from jaxinv.models import classifiers
from jaxinv.runs import classifier


def _numpy_lookahead(grads, lr, period, total, final_decay, w0):
  fast, slow = w0.copy(), w0.copy()
  for t, g in enumerate(grads, start=1):
    fast = fast - lr * g
    if t % period == 0:
      decay = final_decay * (t / total) ** 3
      slow = slow + (1 - decay) * (fast - slow)
      fast = slow.copy()
  return fast, slow


def test_lookahead_matches_numpy():
  rng = np.random.default_rng(0)
  grads = rng.normal(size=(12, 3)).astype(np.float32)
  w0 = rng.normal(size=3).astype(np.float32)
  tx = optax.chain(optax.sgd(0.1), lookahead.lookahead(4, 12, final_decay=0.8))
  params = {"w": jnp.asarray(w0)}
  state = tx.init(params)
  for g in grads:
    updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
    params = optax.apply_updates(params, updates)
  fast, slow = _numpy_lookahead(grads, 0.1, 4, 12, 0.8, w0)
  np.testing.assert_allclose(params["w"], fast, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(lookahead.slow_params(state)["w"], slow, rtol=1e-5, atol=1e-6)
  # Off-sync steps leave the slow weights alone: after 13 steps they equal those after 12.
  updates, state = tx.update({"w": jnp.ones(3)}, state, params)
  np.testing.assert_allclose(lookahead.slow_params(state)["w"], slow, rtol=1e-5, atol=1e-6)


def test_lookahead_rejects_bad_arguments_and_missing_params():
  with pytest.raises(ValueError, match="period"):
    lookahead.lookahead(0, 10)
  tx = lookahead.lookahead(2, 10)
  state = tx.init({"w": jnp.zeros(2)})
  with pytest.raises(ValueError, match="parameters"):
    tx.update({"w": jnp.zeros(2)}, state)


def test_triangle_schedule_warms_up_then_decays():
  schedule = classifier.triangle_schedule(2.0, 100)
  np.testing.assert_allclose([schedule(0), schedule(23), schedule(100)], [0.4, 2.0, 0.14], rtol=1e-5)
  assert schedule(10) < schedule(20) and schedule(50) > schedule(90)


def _airbench_config():
  config = config_lib.default_config("cifar10", "tiny")
  c = config.classifier
  c.model, c.widths, c.conv_impl = "airbench", (8, 16, 16), "xla"
  c.optimizer, c.learning_rate, c.weight_decay, c.lookahead_period = "nesterov", 0.5, 1e-3, 2
  return config


def test_nesterov_recipe_freezes_and_scales_its_parameter_groups():
  config = _airbench_config()
  config_lib.validate(config)
  model = classifier.build_model(config, 10)
  params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  total = 10
  tx = classifier.make_optimizer(config, total)
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  moved = params
  for _ in range(total):
    updates, state = tx.update(grads, state, moved)
    moved = optax.apply_updates(moved, updates)
  change = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), moved, params)
  assert change["whiten"]["kernel"] == 0.0 and change["block0_bn0"]["scale"] == 0.0
  assert change["whiten"]["bias"] > 0 and change["block0_conv0"]["kernel"] > 0
  # The batch-norm bias moves bias_lr_scale times as far as the whitening bias in the steps
  # both train (whiten_bias_fraction = 0.3 of 10: steps 0–2) — compare after 1 step.
  one, _ = tx.update(grads, tx.init(params), params)
  ratio = float(jnp.abs(one["block0_bn0"]["bias"]).max() / jnp.abs(one["whiten"]["bias"]).max())
  # Same gradient, same decay in absolute terms (bias_lr_scale × rate, decay / bias_lr_scale)
  # but a different parameter value: compare the gradient parts only (both biases start at 0).
  np.testing.assert_allclose(ratio, config.classifier.bias_lr_scale, rtol=1e-4)
  # The whitening bias stops after 30 % of the steps.
  late, _ = tx.update(grads, state, moved)
  assert float(jnp.abs(late["whiten"]["bias"]).max()) == 0.0


def test_validation_names_bad_recipe_options():
  config = _airbench_config()
  config.classifier.optimizer = "sgd"
  config.classifier.ema_decay = 0.9
  with pytest.raises(ValueError) as err:
    config_lib.validate(config)
  assert "classifier.optimizer" in str(err.value) and "classifier.ema_decay" in str(err.value)


def test_test_time_shifts_average_three_views():
  config = _airbench_config()
  config.classifier.test_flips = False
  config.classifier.test_translate = 1
  model = classifiers.build_classifier("airbench", 10, widths=(8, 16, 16), conv_impl="xla")
  x = jax.random.uniform(jax.random.key(1), (3, 32, 32, 3), minval=-1, maxval=1)
  variables = model.init(jax.random.key(0), x)
  got = classifier.predict_fn(config, model)(variables, x)
  logits = lambda z: model.apply(variables, z, train=False)[0]
  pad = np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  want = 0.5 * logits(x) + 0.25 * (logits(pad[:, :32, :32]) + logits(pad[:, 2:, 2:]))
  np.testing.assert_array_equal(got, np.asarray(want).argmax(-1))
