import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import losses


def _np_log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _np_normalize(f):
  return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-8)


@pytest.fixture
def batch():
  rng = np.random.default_rng(0)
  n, k, d = 12, 10, 16
  logits = rng.normal(size=(n, k)).astype(np.float32) * 3
  p = np.exp(_np_log_softmax(rng.normal(size=(n, k)))).astype(np.float32)
  y = rng.integers(0, k, n).astype(np.int32)
  feats = rng.normal(size=(n, d)).astype(np.float32)
  return logits, p, y, feats


def test_kl_matches_numpy(batch):
  logits, p, _, _ = batch
  expected = np.mean(np.sum(p * (np.log(p) - _np_log_softmax(logits)), -1))
  got = jnp.mean(jax.vmap(losses.kl_divergence)(p, logits))
  np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 0.5])
def test_kl_at_a_temperature_matches_numpy_and_vmaps(batch, temperature):
  logits, p, _, _ = batch
  log_q = _np_log_softmax(logits.astype(np.float64) / temperature)
  expected = np.sum(p * (np.log(p) - log_q), -1)
  got = jax.vmap(losses.kl_divergence, in_axes=(0, 0, None))(p, logits, temperature)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
  # The loss uses it; zero when the logits are temperature · log p (+ any constant).
  weights = {"kl": 1.0, "ce": 0.0, "cosine": 0.0, "orthogonality": 0.0}
  _, terms = losses.inversion_loss(logits, np.ones((len(p), 3), np.float32), p, np.zeros(len(p), np.int32),
                                   weights, kl_temperature=temperature)
  np.testing.assert_allclose(terms["kl"], expected.mean(), rtol=1e-4)
  matched = temperature * np.log(p) + 7.0
  at_zero = jax.vmap(losses.kl_divergence, in_axes=(0, 0, None))(p, matched, temperature)
  np.testing.assert_allclose(at_zero, 0.0, atol=1e-5)
  grads = jax.grad(lambda l: jnp.sum(jax.vmap(losses.kl_divergence, in_axes=(0, 0, None))(p, l, temperature)))(
      jnp.asarray(matched))
  assert np.all(np.isfinite(grads)) and np.abs(grads).max() < 1e-5  # a minimum, finite gradient


def test_kl_of_one_hot_is_cross_entropy(batch):
  logits, _, y, _ = batch
  onehot = np.eye(logits.shape[1], dtype=np.float32)[y]
  kl = jax.vmap(losses.kl_divergence)(onehot, logits)
  ce = jax.vmap(losses.cross_entropy)(logits, y)
  assert np.all(np.isfinite(kl))
  np.testing.assert_allclose(kl, ce, rtol=1e-5)


def test_cross_entropy_matches_numpy(batch):
  logits, _, y, _ = batch
  expected = -_np_log_softmax(logits)[np.arange(len(y)), y]
  np.testing.assert_allclose(jax.vmap(losses.cross_entropy)(logits, y), expected, rtol=1e-5)


def test_mean_pairwise_cosine_matches_numpy(batch):
  feats = batch[3]
  f = _np_normalize(feats)
  cos = f @ f.T
  n = len(f)
  expected = (cos.sum() - np.trace(cos)) / (n * (n - 1))
  np.testing.assert_allclose(losses.mean_pairwise_cosine(feats), expected, rtol=1e-5, atol=1e-6)


def test_gram_orthogonality_matches_numpy(batch):
  feats = batch[3]
  f = _np_normalize(feats)
  expected = np.mean((f @ f.T - np.eye(len(f))) ** 2)
  np.testing.assert_allclose(losses.gram_orthogonality(feats), expected, rtol=1e-5)


def test_identical_features_have_cosine_one_and_orthogonal_rows_zero():
  same = np.ones((5, 7), np.float32)
  np.testing.assert_allclose(losses.mean_pairwise_cosine(same), 1.0, rtol=1e-6)
  np.testing.assert_allclose(losses.gram_orthogonality(np.eye(4, dtype=np.float32)), 0.0, atol=1e-7)


def test_zero_features_give_finite_values_and_gradients():
  feats = np.zeros((6, 8), np.float32)
  feats[0] = 1.0  # one non-zero row among zero rows
  for fn in (losses.mean_pairwise_cosine, losses.gram_orthogonality):
    value, grad = jax.value_and_grad(fn)(jnp.asarray(feats))
    assert np.isfinite(value)
    assert np.all(np.isfinite(grad))


def test_inversion_loss_weights_combine_terms(batch):
  logits, p, y, feats = batch
  weights = {"kl": 0.5, "ce": 2.0, "cosine": 3.0, "orthogonality": 4.0}
  total, terms = losses.inversion_loss(logits, feats, p, y, weights)
  expected = sum(weights[k] * terms[k] for k in weights)
  np.testing.assert_allclose(total, expected, rtol=1e-6)
  assert set(terms) == set(weights)


def test_extreme_logits_stay_finite():
  logits = jnp.array([[1e4, -1e4, 0.0]])
  p = jnp.array([[0.2, 0.3, 0.5]])
  assert np.isfinite(jax.vmap(losses.kl_divergence)(p, logits)).all()
  assert np.isfinite(jax.vmap(losses.cross_entropy)(logits, jnp.array([1]))).all()
