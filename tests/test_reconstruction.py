"""Reconstruction terms (jaxinv.reconstruction) against explicit computations."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.runs import options
from jaxinv import losses, reconstruction, steps
from jaxinv.config import default_config
from jaxinv.models import classifiers


class _Softmax(nn.Module):
  """Softmax regression: its weight gradients have a closed form."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = x.reshape(x.shape[0], -1)
    return nn.Dense(3, name="head")(h), {"penultimate": h}


def _closed_form_norms(variables, images, labels):
  # CE = −log softmax(Wx + b)[y]: ∇_W = x (s − e_y)ᵀ, ∇_b = s − e_y, so
  # ‖∇_θ‖² = ‖s − e_y‖² (‖x‖² + 1).
  x = images.reshape(images.shape[0], -1)
  p = variables["params"]["head"]
  s = jax.nn.softmax(x @ p["kernel"] + p["bias"])
  r = s - jax.nn.one_hot(labels, 3)
  return jnp.sqrt(jnp.sum(r * r, -1) * (jnp.sum(x * x, -1) + 1.0))


def _setup():
  model = _Softmax()
  images = jax.random.normal(jax.random.key(0), (5, 2, 2, 1))
  variables = model.init(jax.random.key(1), images)
  return model, variables, images, jnp.array([0, 1, 2, 1, 0])


def test_weight_gradient_norms_match_the_closed_form():
  model, variables, images, labels = _setup()
  got = reconstruction.weight_gradient_norms(model, variables, images, labels)
  want = _closed_form_norms(variables, images, labels)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  assert float(jnp.min(got)) > 0.01  # a real check: the gradients are not all tiny


def test_gradient_through_the_weight_gradient_matches_the_closed_form():
  # The generator is trained through ∇_x ‖∇_θ CE‖ (a gradient of a gradient); compare it
  # with the input gradient of the closed form, and with a central finite difference.
  model, variables, images, labels = _setup()
  term = lambda x: jnp.mean(reconstruction.weight_gradient_norms(model, variables, x, labels))
  prefix = reconstruction.weight_gradient_norm_term(examples=3)(_context(model, variables, images, labels, None))
  np.testing.assert_allclose(prefix, jnp.mean(_closed_form_norms(variables, images[:3], labels[:3])), rtol=1e-5)
  explicit = lambda x: jnp.mean(_closed_form_norms(variables, x, labels))
  got = jax.jit(jax.grad(term))(images)
  np.testing.assert_allclose(got, jax.grad(explicit)(images), rtol=1e-4, atol=1e-6)
  direction = jax.random.normal(jax.random.key(3), images.shape)
  h = 1e-2
  fd = (explicit(images + h * direction) - explicit(images - h * direction)) / (2 * h)
  np.testing.assert_allclose(jnp.sum(got * direction), fd, rtol=2e-2)


def _context(model, variables, images, labels, key):
  logits, aux = model.apply(variables, images, train=False)
  batch = {"p": jax.nn.one_hot(labels, 3), "y": labels, "z": None}
  return steps.TermContext(images=images, logits=logits, aux=aux, batch=batch,
                           classifier_apply=steps.make_classifier_apply(model),
                           classifier_variables=variables, key=key)


def test_perturbation_kinds_and_sizes():
  x = jnp.zeros((4, 8, 8, 1))
  sign = reconstruction.perturb(x, jax.random.key(0), "sign", 0.1)
  np.testing.assert_allclose(jnp.abs(sign), 0.1, rtol=1e-6)  # a corner of the L∞ ball
  assert 0.3 < float(jnp.mean(sign > 0)) < 0.7
  gauss = reconstruction.perturb(x, jax.random.key(0), "gaussian", 0.1)
  assert 0.08 < float(jnp.std(gauss)) < 0.12
  with pytest.raises(ValueError, match="reconstruction.perturbation"):
    reconstruction.perturb(x, jax.random.key(0), "uniform", 0.1)


def test_perturbed_terms_equal_the_clean_losses_at_size_zero_only():
  model, variables, images, labels = _setup()
  ctx = _context(model, variables, images, labels, jax.random.key(4))
  clean_kl = jnp.mean(jax.vmap(losses.kl_divergence)(ctx.batch["p"], ctx.logits))
  clean_ce = jnp.mean(jax.vmap(losses.cross_entropy)(ctx.logits, labels))
  np.testing.assert_allclose(reconstruction.kl_perturbed_term("sign", 0.0)(ctx), clean_kl, rtol=1e-6)
  np.testing.assert_allclose(reconstruction.ce_perturbed_term("sign", 0.0)(ctx), clean_ce, rtol=1e-6)
  # With ε the term is the clean loss of the perturbed images, drawn from the context's key.
  noisy = reconstruction.perturb(images, ctx.key, "sign", 0.5)
  want = jnp.mean(jax.vmap(losses.cross_entropy)(model.apply(variables, noisy)[0], labels))
  got = reconstruction.ce_perturbed_term("sign", 0.5)(ctx)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert abs(float(got) - float(clean_ce)) > 1e-3


def test_terms_from_config_keeps_only_weighted_terms():
  config = default_config("digits")
  assert options.reconstruction_terms(config) == ({}, {})
  config.reconstruction.weight_gradient_norm = 0.5
  config.reconstruction.ce_perturbed = 2.0
  terms, weights = options.reconstruction_terms(config)
  assert sorted(terms) == ["ce_perturbed", "weight_gradient_norm"]
  assert weights == {"ce_perturbed": 2.0, "weight_gradient_norm": 0.5}


def test_mlp_batch_norm_is_optional_and_off_by_default():
  x = jnp.zeros((2, 4, 4, 1))
  plain = classifiers.build_classifier("mlp", 3).init(jax.random.key(0), x)
  assert "batch_stats" not in plain and "bn0" not in plain["params"]  # old checkpoints still load
  with_bn = classifiers.build_classifier("mlp", 3, batch_norm=True).init(jax.random.key(0), x)
  assert set(with_bn["batch_stats"]) == {"bn0", "bn1"}
