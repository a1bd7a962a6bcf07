"""Terms on how the classifier's evidence for the other classes looks, beyond CE.

A classifier may give the requested class the largest logit on an image that barely
resembles it (a near-blank image scored "1"); asking the other classes' logits to stay
low as well pushes the image away from every other class, not only below the target.
"""

import jax
import jax.numpy as jnp


def off_target_evidence(logits, label):
  """log Σ_{k≠y} exp(logit_k) − logit_y for one example: the soft maximum of the other
  classes' logits relative to the target's (its softplus is CE)."""
  others = jnp.where(jnp.arange(logits.shape[-1]) == label, -jnp.inf, logits)
  return jax.nn.logsumexp(others) - logits[label]


def margin_hinge(logits, label, margin: float):
  """max(0, margin + off_target_evidence): zero once the target leads by `margin`."""
  return jax.nn.relu(margin + off_target_evidence(logits, label))


def margin_term(margin: float = 5.0):
  """`TermContext -> scalar`: mean `margin_hinge` over the generated batch."""
  def term(ctx):
    return jnp.mean(jax.vmap(lambda l, y: margin_hinge(l, y, margin))(ctx.logits, ctx.batch["y"]))
  return term
