"""Inversion losses (method notes §4), written per example or per pair and vmapped.

All classifier outputs enter as logits and are turned into log-probabilities
once with `log_softmax` (never softmax twice). Norms are floored so that
zero feature vectors give finite values and finite gradients.
"""

import jax
import jax.numpy as jnp

_EPS = 1e-8


def kl_divergence(p, logits, temperature: float = 1.0):
  """KL(p ‖ softmax(logits / temperature)) for one example; entries with p = 0 contribute 0.

  Temperature 1 is the paper's. Above 1 the classifier's logits are compared at a softer
  scale: `p`'s spread is asked of the logits' differences (logits ≈ temperature · log p
  + const), so an image can be confidently its label while its other logits still
  follow `p`."""
  log_q = jax.nn.log_softmax(logits / temperature)
  return jnp.sum(jax.scipy.special.xlogy(p, p) - p * log_q)


def cross_entropy(logits, label):
  """−log softmax(logits)[label] for one example."""
  return -jax.nn.log_softmax(logits)[label]


def smoothed_cross_entropy(logits, label, smoothing):
  """Cross-entropy against (1 − smoothing)·one-hot(label) + smoothing / K, for one example."""
  log_p = jax.nn.log_softmax(logits)
  return -(1.0 - smoothing) * log_p[label] - smoothing * jnp.mean(log_p)


def _safe_norm(f):
  # sqrt of a floored square: the gradient stays finite at f = 0.
  return jnp.sqrt(jnp.maximum(jnp.sum(f * f), _EPS * _EPS))


def normalize(f):
  return f / _safe_norm(f)


def cosine(a, b):
  """Cosine similarity of two feature vectors (0 when either is zero)."""
  return jnp.dot(normalize(a), normalize(b))


def pairwise_cosine_matrix(features):
  """[N, N] matrix of cos(f_i, f_j), vmapped over pairs."""
  return jax.vmap(jax.vmap(cosine, in_axes=(None, 0)), in_axes=(0, None))(features, features)


def mean_pairwise_cosine(features):
  """1/(N(N−1)) Σ_{i≠j} cos(f_i, f_j): the signed mean over distinct pairs."""
  n = features.shape[0]
  if n < 2:
    raise ValueError("The pairwise cosine loss needs a batch of at least 2 examples.")
  cos = pairwise_cosine_matrix(features)
  off_diagonal = 1.0 - jnp.eye(n, dtype=cos.dtype)
  return jnp.sum(cos * off_diagonal) / (n * (n - 1))


def gram_orthogonality(features):
  """mean_{i,j} (G_ij − δ_ij)² with G = F̂F̂ᵀ, F̂ the row-normalised features."""
  f_hat = jax.vmap(normalize)(features)
  gram = f_hat @ f_hat.T
  return jnp.mean((gram - jnp.eye(features.shape[0], dtype=gram.dtype)) ** 2)


def inversion_loss(logits, features, p, y, weights, kl_temperature: float = 1.0):
  """α·KL + β·CE + γ·cos + δ·orth over a batch. Returns (total, terms dict).

  `weights` maps "kl", "ce", "cosine", "orthogonality" to floats; the KL term compares
  `p` with `softmax(logits / kl_temperature)` (`kl_divergence`)."""
  kl = jax.vmap(kl_divergence, in_axes=(0, 0, None))(p, logits, kl_temperature)
  terms = {
      "kl": jnp.mean(kl),
      "ce": jnp.mean(jax.vmap(cross_entropy)(logits, y)),
      "cosine": mean_pairwise_cosine(features),
      "orthogonality": gram_orthogonality(features),
  }
  total = sum(weights[name] * value for name, value in terms.items())
  return total, terms
