"""PGD adversarial training: the attack stays within ε and the pixel range and raises the
loss; the classifier step with an adversary trains, jitted."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinv import adversarial, losses, steps
from jaxinv.config import default_config
from jaxinv.models import classifiers
from jaxinv.runs import classifier as classifier_run

EPSILON = 0.3


def _model_and_batch():
  model = classifiers.build_classifier("mlp", 10, dropout_rate=0.0)
  images = jax.random.uniform(jax.random.key(0), (16, 8, 8, 1), minval=-1, maxval=1)
  labels = jnp.arange(16) % 10
  variables = model.init(jax.random.key(1), images)
  return model, dict(variables), images, labels


def _mean_ce(model, variables, images, labels):
  logits, _ = model.apply(variables, images, train=False)
  return float(jnp.mean(jax.vmap(losses.cross_entropy)(logits, labels)))


def test_pgd_stays_in_the_ball_and_the_pixel_range_and_raises_the_loss():
  model, variables, images, labels = _model_and_batch()
  attack = jax.jit(adversarial.make_adversary(steps.make_classifier_apply(model), epsilon=EPSILON,
                                              steps=5))
  perturbed = attack(variables, images, labels, jax.random.key(2))
  assert float(jnp.max(jnp.abs(perturbed - images))) <= EPSILON + 1e-6
  assert float(jnp.min(perturbed)) >= -1.0 and float(jnp.max(perturbed)) <= 1.0
  assert float(jnp.max(jnp.abs(perturbed - images))) > EPSILON / 2  # it moved
  clean = _mean_ce(model, variables, images, labels)
  assert _mean_ce(model, variables, perturbed, labels) > clean
  uniform_noise = jnp.clip(images + jax.random.uniform(jax.random.key(3), images.shape,
                                                      minval=-EPSILON, maxval=EPSILON), -1, 1)
  assert _mean_ce(model, variables, perturbed, labels) > _mean_ce(model, variables, uniform_noise,
                                                                   labels)


def _l2_per_image(x):
  return np.sqrt(np.sum(np.square(np.asarray(x)), axis=(1, 2, 3)))


def test_l2_pgd_stays_in_the_ball_and_the_pixel_range_and_raises_the_loss():
  model, variables, images, labels = _model_and_batch()
  epsilon = 1.5  # an L2 radius over the 64 pixels of each image
  attack = jax.jit(adversarial.make_adversary(steps.make_classifier_apply(model), epsilon=epsilon,
                                              steps=5, norm="l2"))
  perturbed = attack(variables, images, labels, jax.random.key(2))
  norms = _l2_per_image(perturbed - images)
  assert np.all(norms <= epsilon + 1e-5)
  assert np.all(norms > epsilon / 2)  # every image moved
  assert float(jnp.min(perturbed)) >= -1.0 and float(jnp.max(perturbed)) <= 1.0
  # An L2 step moves many pixels a little, unlike the L∞ attack's ±ε on every pixel.
  assert float(jnp.max(jnp.abs(perturbed - images))) < epsilon
  clean = _mean_ce(model, variables, images, labels)
  assert _mean_ce(model, variables, perturbed, labels) > clean
  gaussian = jax.random.normal(jax.random.key(3), images.shape)
  gaussian = epsilon * gaussian / _l2_per_image(gaussian)[:, None, None, None]
  same_norm_noise = jnp.clip(images + gaussian, -1, 1)
  assert _mean_ce(model, variables, perturbed, labels) > _mean_ce(model, variables, same_norm_noise,
                                                                   labels)


def test_l2_pgd_without_random_start_is_a_pure_ascent_of_a_linear_loss():
  rng = np.random.default_rng(0)
  w = jnp.asarray(rng.normal(size=(2, 2, 1)), jnp.float32)
  x = jnp.zeros((3, 2, 2, 1))
  loss = lambda images, _: jnp.sum(images * w)
  out = adversarial.pgd(loss, x, None, jax.random.key(0), epsilon=0.5, steps=4, random_start=False,
                        norm="l2")
  # Every step goes along w; the projection stops the images on the sphere of radius ε.
  expected = 0.5 * np.asarray(w) / np.linalg.norm(np.asarray(w))
  np.testing.assert_allclose(out, np.broadcast_to(expected, x.shape), rtol=1e-5, atol=1e-6)


def test_pgd_rejects_an_unknown_norm():
  import pytest
  with pytest.raises(ValueError, match="norm"):
    adversarial.pgd(lambda x, _: jnp.sum(x), jnp.zeros((1, 2, 2, 1)), None, jax.random.key(0),
                    epsilon=0.1, steps=1, norm="l1")


def test_pgd_without_random_start_is_a_pure_ascent_of_a_linear_loss():
  w = jnp.asarray(np.random.default_rng(0).normal(size=(4,)), jnp.float32)
  x = jnp.zeros((3, 4))
  loss = lambda images, _: jnp.sum(images @ w)
  out = adversarial.pgd(loss, x, None, jax.random.key(0), epsilon=0.1, steps=3, random_start=False)
  np.testing.assert_allclose(out, jnp.broadcast_to(0.1 * jnp.sign(w), x.shape), rtol=1e-6)


def test_classifier_step_with_an_adversary_trains_on_perturbed_images():
  model, variables, images, labels = _model_and_batch()
  tx = optax.adam(1e-3)
  state = steps.init_train_state(variables, tx)
  adversary = adversarial.make_adversary(steps.make_classifier_apply(model), epsilon=EPSILON, steps=3)
  robust = jax.jit(steps.make_classifier_step(model, tx, adversary=adversary))
  plain = jax.jit(steps.make_classifier_step(model, tx))
  batch = {"image": images, "label": labels}
  _, robust_metrics = robust(state, batch, jax.random.key(0))
  _, plain_metrics = plain(steps.init_train_state(variables, tx), batch, jax.random.key(0))
  assert np.isfinite(robust_metrics["loss"])
  assert float(robust_metrics["loss"]) > float(plain_metrics["loss"])  # the worst-case batch


def test_adversarial_training_runs_from_the_config(tmp_path):
  config = default_config("digits", "tiny")
  config.classifier.model = "mlp"
  config.classifier.steps = 3
  config.classifier.adversarial_epsilon = 0.3
  config.classifier.adversarial_steps = 2
  summary = classifier_run.run(config, tmp_path / "robust")
  assert 0.0 <= summary["test_accuracy"] <= 1.0


def test_l2_adversarial_training_runs_from_the_config(tmp_path):
  config = default_config("digits", "tiny")
  config.classifier.model = "mlp"
  config.classifier.steps = 3
  config.classifier.adversarial_epsilon = 2.0
  config.classifier.adversarial_norm = "l2"
  config.classifier.adversarial_steps = 2
  summary = classifier_run.run(config, tmp_path / "robust_l2")
  assert np.isfinite(summary["test_accuracy"]) and 0.0 <= summary["test_accuracy"] <= 1.0
