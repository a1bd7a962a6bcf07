import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv.runs import options
from jaxinv import conditioning, priors, steps
from jaxinv.config import default_config
from tests.test_steps import K, NZ, _inversion_setup


def _numpy_total_variation(x):
  h, w, c = x.shape
  vertical = sum((x[i + 1, j, k] - x[i, j, k]) ** 2 for i in range(h - 1) for j in range(w) for k in range(c))
  horizontal = sum((x[i, j + 1, k] - x[i, j, k]) ** 2 for i in range(h) for j in range(w - 1) for k in range(c))
  return vertical / ((h - 1) * w * c) + horizontal / (h * (w - 1) * c)


def test_image_priors_match_numpy_loops():
  x = np.random.default_rng(0).uniform(-1.6, 1.6, size=(5, 4, 2))
  np.testing.assert_allclose(priors.total_variation(jnp.asarray(x)), _numpy_total_variation(x), rtol=1e-5)
  np.testing.assert_allclose(priors.l2(jnp.asarray(x)), np.mean(x ** 2), rtol=1e-5)
  hinge = np.mean([max(v - 1, 0) + max(-1 - v, 0) for v in x.ravel()])
  assert hinge > 0  # the sample has pixels outside [-1, 1] on both sides
  np.testing.assert_allclose(priors.pixel_range(jnp.asarray(x)), hinge, rtol=1e-5)
  inside = np.clip(x, -1, 1)
  assert float(priors.pixel_range(jnp.asarray(inside))) == 0.0
  assert float(priors.total_variation(jnp.ones((4, 4, 1)))) == 0.0


def test_terms_from_config_keeps_only_weighted_priors():
  config = default_config("digits")
  assert options.prior_terms(config) == ({}, {})
  config.priors.total_variation = 0.5
  terms, weights = options.prior_terms(config)
  assert list(terms) == ["total_variation"] and weights == {"total_variation": 0.5}


def test_extra_term_enters_the_loss_with_its_weight():
  gen, classifier, tx, state = _inversion_setup()
  batch = conditioning.sample_batch(jax.random.key(5), 8, K, NZ, gen.mode)
  extra = {"total_variation": priors.image_prior_term(priors.total_variation)}
  with_tv = steps.make_inversion_step(gen, classifier, tx, extra_terms=extra)
  weighted = state.replace(loss_weights=steps.loss_weights(1.0, 4.0, 1.0, 1.0, total_variation=2.5))
  _, m = jax.jit(with_tv)(weighted, batch, jax.random.key(3))
  assert float(m["loss_total_variation"]) > 0
  core = m["loss_kl"] + 4.0 * m["loss_ce"] + m["loss_cosine"] + m["loss_orthogonality"]
  np.testing.assert_allclose(m["loss"], core + 2.5 * m["loss_total_variation"], rtol=1e-5)


def test_extra_term_without_weight_or_with_a_core_name_is_refused():
  gen, classifier, tx, state = _inversion_setup()
  batch = conditioning.sample_batch(jax.random.key(5), 8, K, NZ, gen.mode)
  step = steps.make_inversion_step(gen, classifier, tx,
                                   extra_terms={"l2": priors.image_prior_term(priors.l2)})
  with pytest.raises(ValueError, match="no weight"):  # refused while tracing, before any compute
    jax.eval_shape(step, state, batch, jax.random.key(3))
  with pytest.raises(ValueError, match="clash"):
    steps.make_inversion_step(gen, classifier, tx, extra_terms={"ce": lambda ctx: 0.0})


def test_input_transform_is_applied_before_the_classifier():
  gen, classifier, tx, state = _inversion_setup()
  batch = conditioning.sample_batch(jax.random.key(5), 8, K, NZ, gen.mode)
  seen = []

  def flip(images, key):
    seen.append(key)
    return images[:, :, ::-1, :]

  _, plain = jax.jit(steps.make_inversion_step(gen, classifier, tx))(state, batch, jax.random.key(3))
  _, flipped = jax.jit(steps.make_inversion_step(gen, classifier, tx, input_transform=flip))(
      state, batch, jax.random.key(3))
  assert len(seen) == 1  # traced once
  assert not np.allclose(plain["loss_kl"], flipped["loss_kl"])
