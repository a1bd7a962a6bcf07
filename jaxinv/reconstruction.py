"""Training-like data reconstruction terms (method notes §7, TLDR arXiv 2410.16884).

A classifier is confident, robust to small perturbations and has small weight
gradients on its training data. These extra inversion terms (`steps.TermContext
-> scalar`, plugged into `steps.make_inversion_step(..., extra_terms=...)`) steer
the generator towards such inputs:

* `kl_perturbed`, `ce_perturbed`: KL(p ‖ q) and CE(q, y) on a perturbed copy
  `x + ε` of the generated batch (robustness);
* `weight_gradient_norm`: the mean over the batch of ‖∇_θ CE(C_θ(x), y)‖₂, the
  gradient of the classifier's loss with respect to its *weights* at each
  generated image; the generator is trained through it (a gradient of a gradient).

Total variation and the pixel-range hinge are `jaxinv.priors` (config `priors.*`).
"""

import jax
import jax.numpy as jnp

from jaxinv import losses, steps

PERTURBATIONS = ("sign", "gaussian")
TERMS = ("kl_perturbed", "ce_perturbed", "weight_gradient_norm")
_EPS = 1e-12


def perturb(images, key, kind: str, size: float):
  """`images + ε`: "sign" draws ε = ±size per pixel (a random corner of the L∞ ball
  of radius `size`); "gaussian" draws ε ~ N(0, size²). Not clipped: the classifier
  sees the same perturbation a training-time augmentation would."""
  if kind == "sign":
    noise = size * jax.random.rademacher(key, images.shape, dtype=images.dtype)
  elif kind == "gaussian":
    noise = size * jax.random.normal(key, images.shape, images.dtype)
  else:
    raise ValueError(f"Unknown perturbation {kind!r}; choose one of {PERTURBATIONS} "
                     "(config field reconstruction.perturbation).")
  return images + noise


def _perturbed_logits(ctx, kind: str, size: float):
  seen = perturb(ctx.images, ctx.key, kind, size)
  logits, _ = ctx.classifier_apply(ctx.classifier_variables, seen)
  return logits


def kl_perturbed_term(kind: str, size: float):
  """KL(p ‖ softmax(C(x + ε))) averaged over the batch."""
  def term(ctx):
    logits = _perturbed_logits(ctx, kind, size)
    return jnp.mean(jax.vmap(losses.kl_divergence)(ctx.batch["p"], logits))
  return term


def ce_perturbed_term(kind: str, size: float):
  """CE(softmax(C(x + ε)), y) averaged over the batch."""
  def term(ctx):
    logits = _perturbed_logits(ctx, kind, size)
    return jnp.mean(jax.vmap(losses.cross_entropy)(logits, ctx.batch["y"]))
  return term


def _weight_gradient(classifier_apply, variables, image, label):
  """∇_θ CE(C_θ(x), y) for one example, in inference mode (running statistics, no dropout).

  θ is `variables["params"]` for a Linen classifier's variables, else the whole tree."""
  linen = isinstance(variables, dict) and "params" in variables
  def loss(params):
    logits, _ = classifier_apply({**variables, "params": params} if linen else params, image[None])
    return losses.cross_entropy(logits[0], label)
  return jax.grad(loss)(variables["params"] if linen else variables)


def weight_gradient_norms(classifier, variables, images, labels):
  """‖∇_θ CE(C_θ(x_i), y_i)‖₂ per example `[B]`, over all parameters together;
  `classifier` is a jaxinv classifier module or an apply function (`steps.as_classifier_apply`).

  Examples run one after another (`lax.map`), not vmapped: per-example gradients of a
  vmapped CNN and their second derivatives are ~10× slower on XLA:CPU (measured for the
  paper CNN at batch 64: 3.2 s vs 0.34 s per generator step). The square root is floored
  so the outer gradient stays finite at a zero gradient."""
  classifier_apply = steps.as_classifier_apply(classifier)

  def one(example):
    grads = _weight_gradient(classifier_apply, variables, *example)
    squared = sum(jnp.sum(g * g) for g in jax.tree.leaves(grads))
    return jnp.sqrt(jnp.maximum(squared, _EPS))
  return jax.lax.map(one, (images, labels))


def weight_gradient_norm_term(examples: int = 0):
  """The mean per-example weight-gradient norm at labels y over the first `examples` of
  the generated batch (0: all). The conditioning batch is drawn afresh every step, so a
  prefix is an unbiased sample of it at a fraction of the cost."""
  def term(ctx):
    n = examples or ctx.images.shape[0]
    return jnp.mean(weight_gradient_norms(ctx.classifier_apply, ctx.classifier_variables,
                                          ctx.images[:n], ctx.batch["y"][:n]))
  return term
