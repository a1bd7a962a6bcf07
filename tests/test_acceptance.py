"""Rejection sampling (`jaxinv.acceptance`): what it keeps, its determinism and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import acceptance, sampling
from jaxinv.classifier import Classifier
from jaxinv.models.generator import ConditionedGenerator

NUM_CLASSES = 4


@pytest.fixture(scope="module")
def generator_and_variables():
  generator = ConditionedGenerator(num_classes=NUM_CLASSES, image_shape=(8, 8, 1), width=4,
                                   dropout_rate=0.3, mode="label")
  z, p = jnp.zeros((2, generator.latent_dim)), jnp.full((2, NUM_CLASSES), 1 / NUM_CLASSES)
  variables = generator.init(jax.random.key(0), z, p, jnp.zeros((2,), jnp.int32))
  return generator, variables


def _linear(seed):
  """A linear classifier on the flattened image: `(logits, {"features": x})`."""
  w = np.random.default_rng(seed).normal(size=(64, NUM_CLASSES)).astype(np.float32)
  apply_fn = lambda params, x: (x.reshape(x.shape[0], -1) @ params, {"features": x})
  return Classifier(apply_fn, jnp.asarray(w)), w


def _softmax(logits):
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def test_label_probability_is_the_smallest_over_classifiers_as_numpy():
  images = np.random.default_rng(0).uniform(-1, 1, (7, 8, 8, 1)).astype(np.float32)
  labels = np.array([0, 1, 2, 3, 0, 1, 2])
  (one, w1), (two, w2) = _linear(1), _linear(2)
  flat = images.reshape(7, -1)
  expected = np.minimum(_softmax(flat @ w1)[np.arange(7), labels],
                        _softmax(flat @ w2)[np.arange(7), labels])
  got = acceptance.label_probability([one, two], images, labels, batch_size=3)  # 3 chunks
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  accept = acceptance.confident([one, two], 0.3)
  np.testing.assert_array_equal(accept(images, labels), expected >= 0.3)


def test_accepting_everything_returns_the_plain_samples(generator_and_variables):
  generator, variables = generator_and_variables
  labels = sampling.labels_for(5, range(NUM_CLASSES))
  key = jax.random.key(3)
  drawn = acceptance.sample_accepted(generator, variables, labels, key,
                                     lambda images, labels: np.ones(len(labels), bool), batch_size=8)
  np.testing.assert_array_equal(drawn.images, sampling.sample(generator, variables, labels, key,
                                                              batch_size=8))
  assert drawn.acceptance_per_class == [1.0] * NUM_CLASSES and drawn.drawn == len(labels)


def test_kept_images_pass_the_test_for_their_label_and_are_reproducible(generator_and_variables):
  generator, variables = generator_and_variables
  labels = np.array([3, 0, 1, 2, 0, 3, 1, 2, 2, 0, 1, 3], np.int32)  # any order
  key = jax.random.key(4)
  plain = sampling.sample(generator, variables, labels, key, batch_size=8)
  # Keep an image when its mean lies above its class's median over a large plain draw:
  # about half the draws pass, a test the generator's images do not pass by construction.
  many = sampling.labels_for(200, range(NUM_CLASSES))
  pool = sampling.sample(generator, variables, many, jax.random.key(9), batch_size=8 * 25)
  medians = np.array([np.median(pool[many == k].mean((1, 2, 3))) for k in range(NUM_CLASSES)])
  accept = lambda images, labels: images.mean((1, 2, 3)) > medians[labels]
  drawn = acceptance.sample_accepted(generator, variables, labels, key, accept, batch_size=8)
  assert drawn.images.shape == plain.shape
  assert accept(drawn.images, labels).all()
  assert drawn.drawn > len(labels)
  assert all(0 < rate < 1 for rate in drawn.acceptance_per_class), drawn.acceptance_per_class
  # The first round's accepted images come first, in the order drawn.
  first_passed = accept(plain, labels)
  for k in range(NUM_CLASSES):
    kept_first = plain[(labels == k) & first_passed]
    np.testing.assert_array_equal(drawn.images[labels == k][:len(kept_first)], kept_first)
  again = acceptance.sample_accepted(generator, variables, labels, key, accept, batch_size=8)
  np.testing.assert_array_equal(drawn.images, again.images)


def test_a_class_never_accepted_is_named(generator_and_variables):
  generator, variables = generator_and_variables
  labels = sampling.labels_for(2, range(NUM_CLASSES))
  with pytest.raises(ValueError, match=r"class 2 has 0 of the 2 images.*Lower the acceptance"):
    acceptance.sample_accepted(generator, variables, labels, jax.random.key(0),
                               lambda images, labels: labels != 2, max_rounds=2, batch_size=8)


@pytest.mark.parametrize("threshold", [-0.1, 1.0, 2.0])
def test_a_threshold_outside_zero_one_is_refused(threshold):
  with pytest.raises(ValueError, match=r"probability in \[0, 1\)"):
    acceptance.confident([_linear(0)[0]], threshold)


def test_no_round_is_refused(generator_and_variables):
  generator, variables = generator_and_variables
  with pytest.raises(ValueError, match="max_rounds must be at least 1"):
    acceptance.sample_accepted(generator, variables, [0], jax.random.key(0),
                               lambda images, labels: labels >= 0, max_rounds=0)


def test_no_classifier_is_refused():
  with pytest.raises(ValueError, match="at least one classifier"):
    acceptance.confident([], 0.5)
