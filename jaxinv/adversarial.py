"""PGD adversarial training (Madry et al. 2018): the classifier trains on the worst
images within an L∞ ball of its batch. Inversions of robustly trained classifiers tend
to look like the data ("perceptually aligned gradients", Santurkar et al. 2019).

The attack runs the classifier in inference mode (its batch statistics are not moved by
the attack's forward passes), inside the jitted training step (`lax.fori_loop`).
Images live in [-1, 1]; ε and the step size are in those units (ε = 0.6 here is 0.3 of a
[0, 1] image).
"""

from typing import Callable

import jax
import jax.numpy as jnp

from jaxinv import losses


def pgd(loss_fn: Callable, images, labels, key, *, epsilon: float, steps: int,
        step_size: float | None = None, random_start: bool = True, low: float = -1.0,
        high: float = 1.0):
  """Images within `epsilon` (L∞) of `images` and inside [low, high] that raise
  `loss_fn(images, labels) -> scalar`: `steps` signed-gradient ascent steps of
  `step_size` (default 2.5·ε/steps) from a uniform random start, each projected back."""
  if epsilon < 0 or steps < 1:
    raise ValueError(f"PGD needs epsilon ≥ 0 and steps ≥ 1, got epsilon={epsilon}, steps={steps}.")
  step_size = 2.5 * epsilon / steps if step_size is None else step_size

  def project(delta):
    delta = jnp.clip(delta, -epsilon, epsilon)
    return jnp.clip(images + delta, low, high) - images

  delta = jnp.zeros_like(images)
  if random_start:
    delta = project(jax.random.uniform(key, images.shape, images.dtype, -epsilon, epsilon))
  grad = jax.grad(lambda d: loss_fn(images + d, labels))

  def ascend(_, delta):
    return project(delta + step_size * jnp.sign(grad(delta)))

  delta = jax.lax.fori_loop(0, steps, ascend, delta)
  return jax.lax.stop_gradient(images + delta)


def make_adversary(classifier_apply: Callable, *, epsilon: float, steps: int,
                   step_size: float | None = None) -> Callable:
  """`(variables, images, labels, key) -> images`: PGD on the mean cross-entropy of
  `classifier_apply(variables, images) -> (logits, aux)` (inference mode)."""

  def adversary(variables, images, labels, key):
    def loss_fn(x, y):
      logits, _ = classifier_apply(variables, x)
      return jnp.mean(jax.vmap(losses.cross_entropy)(logits, y))
    return pgd(loss_fn, images, labels, key, epsilon=epsilon, steps=steps, step_size=step_size)

  return adversary
