"""PGD adversarial training (Madry et al. 2018): the classifier trains on the worst
images within an L∞ or L2 ball around each image of its batch. Inversions of robustly
trained classifiers tend to look like the data ("perceptually aligned gradients",
Santurkar et al. 2019).

The attack runs the classifier in inference mode (its batch statistics are not moved by
the attack's forward passes), inside the jitted training step (`lax.fori_loop`).
Images live in [-1, 1]; ε and the step size are in those units (an L∞ ε of 0.6 is 0.3 of a
[0, 1] image; an L2 ε of 3 is 1.5). Perceptually aligned gradients were shown for L2 balls; an
L∞ ball on MNIST is also met by thresholding the pixels, which the L2 ball does not reward.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from jaxinv import losses

NORMS = ("linf", "l2")


def _per_image_l2(x):
  """The L2 norm of each image (every axis after the first), shaped to broadcast against x."""
  return jnp.sqrt(jnp.sum(jnp.square(x), axis=tuple(range(1, x.ndim)), keepdims=True))


def pgd(loss_fn: Callable, images, labels, key, *, epsilon: float, steps: int,
        step_size: float | None = None, random_start: bool = True, low: float = -1.0,
        high: float = 1.0, norm: str = "linf"):
  """Images within `epsilon` of `images` (per image, in the `norm` ball: "linf" or "l2") and
  inside [low, high] that raise `loss_fn(images, labels) -> scalar`: `steps` ascent steps of
  `step_size` (default 2.5·ε/steps) from a random start in the ball, each projected back.
  An L∞ step follows the gradient's sign; an L2 step its direction, per image."""
  if epsilon < 0 or steps < 1:
    raise ValueError(f"PGD needs epsilon ≥ 0 and steps ≥ 1, got epsilon={epsilon}, steps={steps}.")
  if norm not in NORMS:
    raise ValueError(f"PGD norm must be one of {NORMS}, got {norm!r}.")
  step_size = 2.5 * epsilon / steps if step_size is None else step_size
  tiny = jnp.finfo(images.dtype).tiny

  def project(delta):
    if norm == "linf":
      delta = jnp.clip(delta, -epsilon, epsilon)
    else:
      delta = delta * jnp.minimum(1.0, epsilon / jnp.maximum(_per_image_l2(delta), tiny))
    return jnp.clip(images + delta, low, high) - images

  def direction(g):
    if norm == "linf":
      return jnp.sign(g)
    return g / jnp.maximum(_per_image_l2(g), tiny)

  delta = jnp.zeros_like(images)
  if random_start:
    if norm == "linf":
      delta = jax.random.uniform(key, images.shape, images.dtype, -epsilon, epsilon)
    else:
      # Uniform in the L2 ball: a Gaussian direction, radius ε·u^(1/d).
      direction_key, radius_key = jax.random.split(key)
      gaussian = jax.random.normal(direction_key, images.shape, images.dtype)
      size = images[0].size
      radius = epsilon * jax.random.uniform(radius_key, (images.shape[0],) + (1,) * (images.ndim - 1),
                                            images.dtype) ** (1.0 / size)
      delta = radius * gaussian / jnp.maximum(_per_image_l2(gaussian), tiny)
    delta = project(delta)
  grad = jax.grad(lambda d: loss_fn(images + d, labels))

  def ascend(_, delta):
    return project(delta + step_size * direction(grad(delta)))

  delta = jax.lax.fori_loop(0, steps, ascend, delta)
  return jax.lax.stop_gradient(images + delta)


def make_adversary(classifier_apply: Callable, *, epsilon: float, steps: int,
                   step_size: float | None = None, norm: str = "linf") -> Callable:
  """`(variables, images, labels, key) -> images`: PGD on the mean cross-entropy of
  `classifier_apply(variables, images) -> (logits, aux)` (inference mode)."""

  def adversary(variables, images, labels, key):
    def loss_fn(x, y):
      logits, _ = classifier_apply(variables, x)
      return jnp.mean(jax.vmap(losses.cross_entropy)(logits, y))
    return pgd(loss_fn, images, labels, key, epsilon=epsilon, steps=steps, step_size=step_size,
               norm=norm)

  return adversary
