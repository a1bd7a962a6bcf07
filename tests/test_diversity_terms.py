"""The diversity and class-evidence terms and the ink prior: against numpy on random
inputs, finite (with finite gradients) at zero, and under vmap."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import class_evidence, diversity, priors, steps
from jaxinv.config import default_config
from jaxinv.runs import options

RNG = np.random.default_rng(0)


def _numpy_pixel_cosine(images, labels):
  flat = images.reshape(len(images), -1)
  flat = flat - flat.mean(1, keepdims=True)
  values = [flat[i] @ flat[j] / (np.linalg.norm(flat[i]) * np.linalg.norm(flat[j]))
            for i, j in itertools.permutations(range(len(flat)), 2) if labels[i] == labels[j]]
  return np.mean(values)


def _numpy_class_cosine(features, labels):
  values = [features[i] @ features[j] / (np.linalg.norm(features[i]) * np.linalg.norm(features[j]))
            for i, j in itertools.permutations(range(len(features)), 2) if labels[i] == labels[j]]
  return np.mean(values)


def _numpy_mode_seeking(images, latents, labels):
  flat = images.reshape(len(images), -1)
  rms = lambda d: np.sqrt(np.mean(d * d))
  ratios = [rms(flat[i] - flat[j]) / rms(latents[i] - latents[j])
            for i, j in itertools.permutations(range(len(flat)), 2) if labels[i] == labels[j]]
  return 1.0 / (np.mean(ratios) + 1e-3)


def _numpy_margin(logits, label, margin):
  others = np.delete(logits, label)
  return max(0.0, margin + np.log(np.sum(np.exp(others))) - logits[label])


@pytest.fixture
def batch():
  images = RNG.uniform(-1, 1, (6, 5, 5, 1)).astype(np.float32)
  latents = RNG.normal(size=(6, 4)).astype(np.float32)
  labels = np.array([0, 1, 0, 2, 1, 0])
  return images, latents, labels


def test_pixel_cosine_matches_numpy(batch):
  images, _, labels = batch
  np.testing.assert_allclose(diversity.pixel_cosine(images, labels),
                             _numpy_pixel_cosine(images, labels), rtol=1e-5)


def test_class_cosine_matches_numpy_and_ignores_pairs_of_other_labels(batch):
  _, latents, labels = batch
  features = RNG.normal(size=(6, 7)).astype(np.float32)
  np.testing.assert_allclose(diversity.class_cosine(features, labels),
                             _numpy_class_cosine(features, labels), rtol=1e-5)
  # Copies inside each class cost 1 whatever the other classes look like.
  copies = features[labels]
  np.testing.assert_allclose(diversity.class_cosine(copies, labels), 1.0, rtol=1e-5)
  assert diversity.class_cosine(features, labels) < 0.9


def test_sparsity_prior_matches_numpy():
  images = RNG.uniform(-1, 1, (3, 4, 4, 1)).astype(np.float32)
  np.testing.assert_allclose(jax.vmap(priors.sparsity)(images),
                             [np.mean((x + 1) / 2) for x in images], rtol=1e-5)


def test_saturation_prior_matches_numpy_and_is_zero_on_black_and_white():
  images = RNG.uniform(-1, 1, (3, 4, 4, 2)).astype(np.float32)
  np.testing.assert_allclose(jax.vmap(priors.saturation)(images),
                             [np.mean(1 - x.astype(np.float64) ** 2) for x in images], rtol=1e-5)
  stroke = np.full((6, 6, 1), -1.0, np.float32)
  stroke[:, 2:4] = 1.0
  assert float(priors.saturation(stroke)) == 0.0
  assert float(priors.saturation(np.zeros((6, 6, 1), np.float32))) == 1.0  # mid grey costs most


def test_border_prior_matches_numpy_and_ignores_the_centre():
  images = RNG.uniform(-1, 1, (3, 12, 12, 2)).astype(np.float32)
  ink = (images + 1) / 2
  expected = []
  for x in ink.mean(-1):
    centre = x[4:-4, 4:-4]
    expected.append((x.sum() - centre.sum()) / (x.size - centre.size))
  np.testing.assert_allclose(jax.vmap(priors.border_ink)(images), expected, rtol=1e-5)
  centred = np.full((12, 12, 1), -1.0, np.float32)
  centred[4:8, 4:8] = 1.0
  assert float(priors.border_ink(centred)) == 0.0


def test_mode_seeking_matches_numpy(batch):
  images, latents, labels = batch
  np.testing.assert_allclose(diversity.mode_seeking(images, latents, labels),
                             _numpy_mode_seeking(images, latents, labels), rtol=1e-5)


def test_margin_matches_numpy():
  logits = RNG.normal(size=(5, 4)).astype(np.float32) * 3
  labels = np.array([0, 3, 1, 1, 2])
  got = jax.vmap(lambda l, y: class_evidence.margin_hinge(l, y, 2.0))(logits, labels)
  np.testing.assert_allclose(got, [_numpy_margin(l, y, 2.0) for l, y in zip(logits, labels)],
                             rtol=1e-5, atol=1e-6)


def test_ink_prior_matches_numpy():
  images = RNG.uniform(-1, -0.5, (3, 4, 4, 1)).astype(np.float32)
  expected = [max(0.0, 0.1 - np.mean((x + 1) / 2)) for x in images]
  np.testing.assert_allclose(jax.vmap(priors.ink)(images), expected, rtol=1e-5, atol=1e-7)


def test_terms_are_finite_with_finite_gradients_at_zero():
  zeros, z, labels = jnp.zeros((4, 5, 5, 1)), jnp.zeros((4, 3)), jnp.array([0, 0, 1, 1])
  for fn in (lambda x: diversity.pixel_cosine(x, labels),
             lambda x: diversity.class_cosine(x.reshape(4, -1), labels),
             lambda x: jnp.mean(jax.vmap(priors.sparsity)(x)),
             lambda x: jnp.mean(jax.vmap(priors.border_ink)(x)),
             lambda x: jnp.mean(jax.vmap(priors.saturation)(x)),
             lambda x: diversity.mode_seeking(x, z, labels),
             lambda x: jnp.mean(jax.vmap(priors.ink)(x))):
    value, grad = jax.value_and_grad(fn)(zeros)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
  value, grad = jax.value_and_grad(lambda l: class_evidence.margin_hinge(l, 1, 5.0))(jnp.zeros(3))
  assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_terms_vmap_over_a_leading_axis(batch):
  images, latents, labels = batch
  stacked = np.stack([images, images[::-1]])
  got = jax.vmap(lambda x: diversity.pixel_cosine(x, labels))(stacked)
  np.testing.assert_allclose(got[0], diversity.pixel_cosine(images, labels), rtol=1e-5)
  np.testing.assert_allclose(got[1], diversity.pixel_cosine(images[::-1], labels), rtol=1e-5)
  features = np.stack([images.reshape(6, -1), images[::-1].reshape(6, -1)])
  got = jax.vmap(lambda f: diversity.class_cosine(f, labels))(features)
  np.testing.assert_allclose(got[1], diversity.class_cosine(features[1], labels), rtol=1e-5)
  got = jax.vmap(lambda x: diversity.mode_seeking(x, latents, labels))(stacked)
  np.testing.assert_allclose(got[0], diversity.mode_seeking(images, latents, labels), rtol=1e-5)


def test_copies_cost_more_than_varied_images(batch):
  images, latents, labels = batch
  copies = np.repeat(images[:1], 6, axis=0)
  assert diversity.pixel_cosine(copies, labels) > diversity.pixel_cosine(images, labels)
  assert diversity.mode_seeking(copies, latents, labels) > diversity.mode_seeking(images, latents, labels)


def test_config_weights_turn_the_terms_on():
  config = default_config("digits", "tiny")
  assert options.prior_terms(config) == ({}, {})
  config.priors.update(ink=1.0, pixel_cosine=0.5, mode_seeking=0.25, margin=2.0, sparsity=0.5,
                       class_cosine=3.0)
  terms, weights = options.prior_terms(config)
  assert weights == {"ink": 1.0, "pixel_cosine": 0.5, "mode_seeking": 0.25, "margin": 2.0,
                     "sparsity": 0.5, "class_cosine": 3.0}
  images = jnp.asarray(RNG.uniform(-1, 1, (4, 28, 28, 1)), jnp.float32)
  batch = {"z": jnp.asarray(RNG.normal(size=(4, 100)), jnp.float32), "y": jnp.array([0, 0, 1, 1]),
           "p": jnp.full((4, 10), 0.1)}
  features = jnp.asarray(RNG.normal(size=(4, 16)), jnp.float32)
  ctx = steps.TermContext(images=images, logits=jnp.zeros((4, 10)), aux=None, batch=batch, features=features,
                          classifier_apply=None, classifier_variables=None, key=None)
  assert all(np.isfinite(terms[name](ctx)) for name in terms)
