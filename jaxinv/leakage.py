"""How much of a training set a reconstruction attack recovers (method notes §7).

Pure functions of arrays, as public follow-ups of TLDR evaluate:

* `ssim_matrix`: SSIM of every reconstruction against every candidate image,
  equal to `metrics.ssim` pair by pair but computed as batched matrix products
  (60 000 training images × hundreds of reconstructions fit in seconds on a CPU);
* `best_same_class`: each reconstruction's best SSIM among the training images of
  its own class;
* `hungarian_match`: one-to-one matching of reconstructions to training images
  maximising total SSIM (same class only), and the count of matches above a threshold.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from jaxinv import metrics

# dm-pix's SSIM constants (metrics.ssim): images mapped to [0, 1], max_val 1.
_K1, _K2, _SIGMA = 0.01, 0.03, 1.5
_CHUNK = 512  # candidate images per block: their windows take CHUNK × 324 × 121 floats (80 MB)


def _gaussian(size: int):
  hw = size // 2
  shift = (2 * hw - size + 1) / 2
  f = np.exp(-0.5 * ((np.arange(size) - hw + shift) / _SIGMA) ** 2)
  return f / f.sum()


def _patches(images, size: int):
  """`[N, P, size², C]`: the P valid `size×size` windows of every image."""
  n, h, w, c = images.shape
  rows = np.arange(h - size + 1)[:, None] + np.arange(size)[None, :]  # [Ph, size]
  cols = np.arange(w - size + 1)[:, None] + np.arange(size)[None, :]
  patches = images[:, rows[:, None, :, None], cols[None, :, None, :], :]  # [N, Ph, Pw, s, s, C]
  return patches.reshape(n, -1, size * size, c)


@functools.partial(jax.jit, static_argnames="size")
def _ssim_block(a, b, size: int):
  a, b = (a + 1.0) / 2.0, (b + 1.0) / 2.0  # metrics.ssim's [0, 1] convention
  g = _gaussian(size)
  weights = jnp.asarray(np.outer(g, g).reshape(-1), jnp.float32)  # the separable 2-D window
  pa, pb = _patches(a, size), _patches(b, size)
  mu_a, sq_a = jnp.einsum("npkc,k->npc", pa, weights), jnp.einsum("npkc,k->npc", pa * pa, weights)
  mu_b, sq_b = jnp.einsum("npkc,k->npc", pb, weights), jnp.einsum("npkc,k->npc", pb * pb, weights)
  # Filtered a·b per window for every pair: one matrix product per window position and channel.
  cross = jnp.einsum("npkc,mpkc->nmpc", pa * weights[None, None, :, None], pb,
                     precision=jax.lax.Precision.HIGHEST)
  mu_ab = mu_a[:, None] * mu_b[None, :]
  mu_aa, mu_bb = (mu_a * mu_a)[:, None], (mu_b * mu_b)[None, :]
  eps = jnp.finfo(jnp.float32).eps ** 2
  var_a = jnp.maximum(eps, sq_a[:, None] - mu_aa)
  var_b = jnp.maximum(eps, sq_b[None, :] - mu_bb)
  cov = cross - mu_ab
  cov = jnp.sign(cov) * jnp.minimum(jnp.sqrt(var_a * var_b), jnp.abs(cov))
  c1, c2 = _K1 ** 2, _K2 ** 2
  ssim_map = ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_aa + mu_bb + c1) * (var_a + var_b + c2))
  return jnp.mean(ssim_map, axis=(2, 3))


def ssim_matrix(a, b, chunk: int = _CHUNK) -> np.ndarray:
  """`[len(a), len(b)]` SSIM of every image of `a` against every image of `b` (NHWC in
  [-1, 1]); entry (i, j) equals `metrics.ssim(a[i:i+1], b[j:j+1])`."""
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  if a.shape[1:] != b.shape[1:]:
    raise ValueError(f"ssim_matrix needs images of one shape; got {a.shape[1:]} and {b.shape[1:]}.")
  size = min(11, a.shape[1], a.shape[2])
  out = np.empty((len(a), len(b)), np.float32)
  for start in range(0, len(b), chunk):
    block = b[start:start + chunk]
    short = min(chunk, len(b)) - len(block)  # pad the last block: one compiled shape
    if short:
      block = np.concatenate([block, np.repeat(block[-1:], short, axis=0)])
    values = np.asarray(_ssim_block(jnp.asarray(a), jnp.asarray(block), size))
    out[:, start:start + len(block) - short] = values[:, :len(block) - short]
  return out


def _pair_ssim(a, b, chunk: int = 4096) -> np.ndarray:
  """`metrics.ssim(a[i], b[i])` for aligned pairs, in chunks that bound memory."""
  return np.concatenate([metrics.ssim(a[i:i + chunk], b[i:i + chunk])
                         for i in range(0, len(a), chunk)]) if len(a) else np.zeros(0, np.float32)


def same_class_ssim(images, labels, train_images, train_labels, candidates: int = 0) -> np.ndarray:
  """`[N, M]` SSIM of each image against each training image of the same class; −inf
  across classes (never a match).

  `candidates` > 0 bounds the work for large training sets: where a class has more
  training images than that, each image is compared only with its `candidates` nearest
  same-class training images in pixel distance (the rest stay −inf). 0: all of them."""
  images, labels = np.asarray(images, np.float32), np.asarray(labels)
  train_images, train_labels = np.asarray(train_images, np.float32), np.asarray(train_labels)
  out = np.full((len(images), len(train_labels)), -np.inf, np.float32)
  for k in np.unique(labels):
    rows, cols = np.flatnonzero(labels == k), np.flatnonzero(train_labels == k)
    if not len(cols):
      continue
    if not candidates or len(cols) <= candidates:
      out[np.ix_(rows, cols)] = ssim_matrix(images[rows], train_images[cols])
      continue
    near, _ = metrics.nearest_neighbours(images[rows], train_images[cols], k=candidates)
    chosen = cols[near]  # [rows, candidates] training indices
    scores = _pair_ssim(np.repeat(images[rows], candidates, axis=0), train_images[chosen.reshape(-1)])
    out[rows[:, None], chosen] = scores.reshape(len(rows), candidates)
  return out


def best_same_class(similarity) -> tuple[np.ndarray, np.ndarray]:
  """`(best SSIM [N], index of that training image [N])` from a `same_class_ssim` matrix."""
  similarity = np.asarray(similarity)
  index = np.argmax(similarity, axis=1)
  return similarity[np.arange(len(similarity)), index], index


def hungarian_match(similarity) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One-to-one matching of rows (reconstructions) to columns (training images) that
  maximises the summed similarity; −inf entries (other classes) are never used.

  Returns `(rows, cols, scores)` of the matched pairs, best first."""
  similarity = np.asarray(similarity, np.float64)
  allowed = np.isfinite(similarity)
  # A finite stand-in far below any SSIM (≥ −1) for forbidden pairs; dropped afterwards.
  cost = np.where(allowed, -similarity, 1e6)
  rows, cols = linear_sum_assignment(cost)
  keep = allowed[rows, cols]
  rows, cols = rows[keep], cols[keep]
  scores = similarity[rows, cols]
  order = np.argsort(-scores, kind="stable")
  return rows[order], cols[order], scores[order]


def count_matches(scores, threshold: float) -> int:
  """How many matched pairs reach SSIM ≥ threshold."""
  return int(np.sum(np.asarray(scores) >= threshold))


def leakage_summary(images, labels, train_images, train_labels, threshold: float,
                    candidates: int = 0) -> dict:
  """The audit of one set of images against a training set: best same-class SSIM per
  image, Hungarian matching, and the count and shares of matches ≥ threshold. Array
  entries (per image or per matched pair) are numpy; the rest are Python numbers."""
  similarity = same_class_ssim(images, labels, train_images, train_labels, candidates)
  best, best_index = best_same_class(similarity)
  rows, cols, scores = hungarian_match(similarity)
  matched = count_matches(scores, threshold)
  return {
      "images": len(labels),
      "mean_best_ssim": float(np.mean(best)),
      "median_best_ssim": float(np.median(best)),
      "best_ssim_at_threshold": int(np.sum(best >= threshold)),
      "matched_at_threshold": matched,
      "matched_share_of_train": matched / len(train_labels),
      "matched_share_of_images": matched / len(labels),
      "mean_matched_ssim": float(np.mean(scores)) if len(scores) else float("nan"),
      "best_ssim": best, "best_index": best_index,
      "match_rows": rows, "match_cols": cols, "match_scores": scores,
  }


def membership_gap(images, labels, members, member_labels, nonmembers, nonmember_labels,
                   candidates: int = 0) -> dict:
  """Do the images resemble the training images more than equally many images the classifier
  never saw? Best same-class SSIM against `members` and against `nonmembers` (sets of the same
  size and class mix), their mean difference, and the share of images closer to a member.
  A reconstruction attack that recovers training data gives a clearly positive gap; images
  that merely look like the data distribution give a gap near 0."""
  to_members, _ = best_same_class(same_class_ssim(images, labels, members, member_labels, candidates))
  to_nonmembers, _ = best_same_class(
      same_class_ssim(images, labels, nonmembers, nonmember_labels, candidates))
  return {"mean_best_ssim_members": float(np.mean(to_members)),
          "mean_best_ssim_nonmembers": float(np.mean(to_nonmembers)),
          "gap": float(np.mean(to_members - to_nonmembers)),
          "share_closer_to_members": float(np.mean(to_members > to_nonmembers))}
