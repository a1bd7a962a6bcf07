"""Out-of-distribution scores and test sets (method notes §6).

One convention everywhere: **a higher score means more out-of-distribution**.

Scores of the K+1-class classifier whose last class is "garbage":
  * `garbage_score`: the log-odds of the garbage probability, `log p_g − log(1 − p_g)`;
  * `uncertainty_score`: the paper's UE, 0 for a one-hot output, 1 for a uniform one;
  * `id_msp_score`: the top in-distribution probability, `−log max_{k<K} p_k` — low both
    when the garbage class wins and when the K real classes split the rest.
  * `garbage_energy_score`: the garbage score of several classifiers' mean probabilities
    plus a weight times the free energy of K-class classifiers (the plain one of `ood
    train`) — the garbage class catches inputs like its garbage, the energy catches those
    near the data on which a classifier of the K real classes is unsure (photographs turned
    upside down, say).
Baselines on the plain K-class classifier:
  * `msp_score`: maximum softmax probability, as `−log max_k p_k`;
  * `energy_score`: the free energy `−logsumexp(logits)`;
  * `odin_score`: MSP at temperature T on an input nudged (by ε·sign of the gradient)
    towards a more confident prediction (`odin_logits` computes those logits).

Each score is a function of logits, computed in float64 numpy, and written in a
form that does not saturate: a well-trained classifier gives max-probabilities that
round to 1.0 in float32 for most test images, which would turn the ranking (and so
AUROC / FPR@95) into a matter of ties. The log forms are strictly monotone in the
named quantity, so rankings equal those of `p_g`, `1 − MSP`, etc. in exact arithmetic.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

GARBAGE = "garbage"
DETECTOR_SCORES = ("garbage", "garbage_energy", "ue", "id_msp")  # need a garbage class
BASELINE_SCORES = ("msp", "odin", "energy")  # of the plain K-class classifier
SCORES = DETECTOR_SCORES + BASELINE_SCORES


def _as_float64(logits) -> np.ndarray:
  logits = np.asarray(logits, np.float64)
  if logits.ndim != 2 or logits.shape[1] < 2:
    raise ValueError(f"logits must be [N, classes] with at least 2 classes; got {logits.shape}.")
  return logits


def _logsumexp(x: np.ndarray) -> np.ndarray:
  top = x.max(axis=1, keepdims=True)
  return top[:, 0] + np.log(np.exp(x - top).sum(axis=1))


def softmax(logits) -> np.ndarray:
  x = _as_float64(logits)
  e = np.exp(x - x.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def _neg_log_softmax_at(x: np.ndarray, k: np.ndarray) -> np.ndarray:
  """`−log softmax(x)[k] = log(1 + Σ_{j≠k} exp(x_j − x_k))` per row, with log1p of the small
  sum, so a near-certain class keeps a distinct, non-zero score."""
  rows = np.arange(len(x))
  rest = np.exp(x - x[rows, k][:, None])
  rest[rows, k] = 0.0
  return np.log1p(rest.sum(axis=1))


def msp_score(logits) -> np.ndarray:
  """`−log max_k softmax_k`."""
  x = _as_float64(logits)
  return _neg_log_softmax_at(x, x.argmax(axis=1))


def energy_score(logits, temperature: float = 1.0) -> np.ndarray:
  """`−T·logsumexp(logits / T)` (Liu et al. 2020): in-distribution inputs have low energy."""
  return -temperature * _logsumexp(_as_float64(logits) / temperature)


def odin_score(perturbed_logits, temperature: float) -> np.ndarray:
  """MSP score at temperature T of the logits of ODIN-perturbed inputs (see `odin_logits`)."""
  return msp_score(_as_float64(perturbed_logits) / temperature)


def garbage_score(logits) -> np.ndarray:
  """Log-odds of the last (garbage) class: `l_g − logsumexp(l_0 … l_{K−1})`."""
  x = _as_float64(logits)
  return x[:, -1] - _logsumexp(x[:, :-1])


def garbage_energy_score(garbage_logits_list, energy_logits_list, energy_weight: float) -> np.ndarray:
  """`garbage_score(mean_probability_logits(G)) + w · mean_m(−logsumexp(e_m))`: the garbage
  log-odds of the K+1-class classifiers' mean probabilities (logits `G`, last class garbage)
  plus `w` times the mean free energy of the classifiers with K-class logits `e_m` (e.g. the
  plain classifier that `ood train` trains beside the loop). Both terms are in nats, and
  `w = 0` gives the garbage score alone."""
  if not energy_weight >= 0:
    raise ValueError(f"energy_weight must be a non-negative number; got {energy_weight}.")
  garbage = garbage_score(mean_probability_logits(garbage_logits_list))
  energies = [_as_float64(e) for e in energy_logits_list]
  if not energies or any(len(e) != len(garbage) for e in energies):
    raise ValueError("garbage_energy_score: expected one or more [N, K] energy logits for the "
                     f"{len(garbage)} inputs; got shapes {[e.shape for e in energies]}.")
  energy = np.mean([-_logsumexp(e) for e in energies], axis=0)
  return garbage + energy_weight * energy


def mean_probability_logits(logits_list) -> np.ndarray:
  """`log mean_m softmax(logits_m)` of several classifiers' logits [N, classes], in float64:
  an ensemble's output as logits (their softmax is the mean probability). Computed as a
  logsumexp of log-softmaxes, so confident outputs keep their small probabilities."""
  members = [_as_float64(x) for x in logits_list]
  if not members or any(m.shape != members[0].shape for m in members):
    raise ValueError("mean_probability_logits: expected one or more [N, classes] logits of one "
                     f"shape; got {[m.shape for m in members]}.")
  log_probs = np.stack([m - _logsumexp(m)[:, None] for m in members])  # [M, N, classes]
  top = log_probs.max(axis=0)
  return top + np.log(np.exp(log_probs - top).mean(axis=0))


def id_msp_score(logits) -> np.ndarray:
  """`−log max_{k<K} softmax_k` over the K in-distribution classes of a K+1-class output whose
  last class is garbage (the softmax is over all K+1, so garbage mass lowers the maximum)."""
  x = _as_float64(logits)
  return _neg_log_softmax_at(x, x[:, :-1].argmax(axis=1))


def garbage_probability(logits) -> np.ndarray:
  return softmax(logits)[:, -1]


def uncertainty_score(logits) -> np.ndarray:
  """The paper's UE over all n = K+1 outputs, with k = argmax p:

      UE = 1 − Σ_i (p_i − 1/n)² / Σ_i (δ_ik − 1/n)²

  The denominator is (n−1)/n for every k and Σ_i (p_i − 1/n)² = Σ p_i² − 1/n, so
  UE = n/(n−1) · Σ_i p_i (1 − p_i). That form is evaluated, with 1 − p_k of the top
  class taken as the sum of the others, so confident outputs keep distinct values."""
  p = softmax(logits)
  n = p.shape[1]
  rows = np.arange(len(p))
  top = p.argmax(axis=1)
  complement = 1.0 - p
  others = p.copy()
  others[rows, top] = 0.0
  complement[rows, top] = others.sum(axis=1)
  return n / (n - 1) * np.sum(p * complement, axis=1)


def odin_logits(model, variables, images, *, temperature: float, epsilon: float):
  """Logits of ODIN's perturbed inputs (Liang et al. 2018), jit-compiled with the gradient.

  `x̃ = x + ε·sign(∇_x log max_k softmax_k(f(x)/T))` moves each input to raise its own
  temperature-scaled confidence (in-distribution inputs gain more). `model` is a jaxinv
  classifier (returns `(logits, aux)`), run in inference mode. No clipping: ODIN
  perturbs freely."""
  return _odin(model)(variables, jnp.asarray(images), jnp.float32(temperature),
                      jnp.float32(epsilon))


@functools.lru_cache(maxsize=8)
def _odin(model):
  def perturbed(variables, images, temperature, epsilon):
    def log_confidence(x):
      logits = model.apply(variables, x, train=False)[0] / temperature
      # A sum of per-image terms: each image's gradient is its own.
      return jnp.sum(jnp.max(jax.nn.log_softmax(logits), axis=-1))
    grad = jax.grad(log_confidence)(images)
    return model.apply(variables, images + epsilon * jnp.sign(grad), train=False)[0]
  return jax.jit(perturbed)


# --- Test sets built from arrays (loading files is the run's job) ---

SYNTHETIC_SETS = ("gaussian", "uniform", "flipped", "inverted")


def gaussian_images(seed: int, count: int, shape, std: float) -> np.ndarray:
  """N(0, std²) pixels clipped to [-1, 1]: the garbage seed and the "gaussian" OOD set."""
  rng = np.random.default_rng(seed)
  return np.clip(rng.normal(0.0, std, (count, *shape)), -1.0, 1.0).astype(np.float32)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
  """Separable Gaussian blur of [N, H, W, C] images over H and W (edges reflected);
  sigma in pixels, 0 returns the images unchanged."""
  if sigma <= 0:
    return images
  radius = int(np.ceil(3 * sigma))
  taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
  taps /= taps.sum()
  out = np.asarray(images, np.float64)
  for axis in (1, 2):
    pad = [(0, 0)] * out.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(out, pad, mode="reflect" if out.shape[axis] > radius else "edge")
    out = sum(w * np.take(padded, np.arange(i, i + out.shape[axis]), axis=axis)
              for i, w in enumerate(taps))
  return out


def smooth_noise_images(seed, count: int, shape, std: float, sigmas) -> np.ndarray:
  """Gaussian noise at several spatial scales: white N(0, 1) noise blurred by each sigma
  in `sigmas` (an equal share of the images each; 0 = white), rescaled per image to
  standard deviation `std`, clipped to [-1, 1]. Blurred noise is data-free but has the
  large smooth regions real images have and white noise lacks."""
  rng = np.random.default_rng(seed)
  white = rng.normal(0.0, 1.0, (count, *shape))
  groups = np.array_split(np.arange(count), len(sigmas))
  out = np.empty_like(white)
  for sigma, index in zip(sigmas, groups):
    blurred = gaussian_blur(white[index], float(sigma))
    scale = blurred.reshape(len(index), -1).std(axis=1).reshape(-1, *([1] * len(shape)))
    out[index] = blurred / np.maximum(scale, 1e-12) * std
  return np.clip(out, -1.0, 1.0).astype(np.float32)


def uniform_images(seed: int, count: int, shape) -> np.ndarray:
  rng = np.random.default_rng(seed)
  return rng.uniform(-1.0, 1.0, (count, *shape)).astype(np.float32)


def flipped(images: np.ndarray) -> np.ndarray:
  """Upside down (a vertical flip): unlike a mirror image, no longer a plausible
  garment, and for digits mostly not a digit."""
  return np.ascontiguousarray(np.asarray(images)[:, ::-1])


def inverted(images: np.ndarray) -> np.ndarray:
  """Intensity-inverted: white background, dark strokes (inputs are in [-1, 1])."""
  return -np.asarray(images)
