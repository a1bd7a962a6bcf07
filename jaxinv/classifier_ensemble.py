"""Multi-classifier inversion: the generator's images must also be accepted by other
classifiers of the same architecture (other seeds), so it cannot fit one model's
blind spots. The members' variables are stacked on a leading axis and the members
run vmapped ("vmap") or one after another in the same program ("unrolled": on
XLA:CPU vmapped convolutions are much slower than unbatched ones, see
`config.ensemble.impl`).
"""

import jax
import jax.numpy as jnp

from jaxinv import diversity, losses, steps


def stack_variables(variables_list):
  """One tree with a leading member axis from a list of same-shaped variable trees."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *variables_list)


def _each_member(apply, stacked, impl: str):
  """`apply(variables) -> pytree` for every member, stacked on a leading member axis."""
  if impl == "vmap":
    return jax.vmap(apply)(stacked)
  count = jax.tree.leaves(stacked)[0].shape[0]
  return stack_variables([apply(jax.tree.map(lambda x, i=i: x[i], stacked)) for i in range(count)])


def member_outputs(model, stacked, images, impl: str = "vmap", feature_layer: str = "penultimate"):
  """`([M, B, K] logits, [M, B, F] features)` of every member on the same images
  (inference mode); `model` is a jaxinv classifier module or an apply function of the
  members' shared architecture, `feature_layer` a key of its `aux`."""
  classifier_apply = steps.as_classifier_apply(model)

  def apply(variables):
    logits, aux = classifier_apply(variables, images)
    return logits, aux[feature_layer].reshape(images.shape[0], -1)

  return _each_member(apply, stacked, impl)


def members_class_cosine(features, y):
  """Mean over members of `diversity.class_cosine` of each member's `[M, B, F]` features:
  the within-class cosine measured by the other classifiers, e.g. a robustly trained one
  whose features follow what an image looks like rather than the target's blind spots."""
  return jnp.mean(jax.vmap(diversity.class_cosine, in_axes=(0, None))(features, y))


def ensemble_loss(logits, p, y, alpha: float, beta: float, kl_temperature: float = 1.0):
  """Mean over members of α·KL(p ‖ q_m) + β·CE(q_m, y), each averaged over the batch; the
  KL at `kl_temperature` as in the inversion loss (`losses.kl_divergence`)."""
  kl_one = lambda p, logits: losses.kl_divergence(p, logits, kl_temperature)
  kl = jax.vmap(jax.vmap(kl_one), in_axes=(None, 0))(p, logits)
  ce = jax.vmap(jax.vmap(losses.cross_entropy), in_axes=(0, None))(logits, y)
  return alpha * jnp.mean(kl) + beta * jnp.mean(ce)


def make_members_on_seen(model, stacked, *, impl: str = "vmap", feature_layer: str = "penultimate"):
  """`TermContext -> ([M, B, K] logits, [M, B, F] features)`: `member_outputs` on the batch
  the inverted classifier saw (same input transform), the members frozen. Kept in the step's
  `ctx.memo`, so the terms built on one such function (`make_term`, `make_cosine_term`) run
  the members forward and backward once per step."""
  frozen = jax.lax.stop_gradient(stacked)

  def members_on_seen(ctx):
    memo = {} if ctx.memo is None else ctx.memo
    if members_on_seen not in memo:
      memo[members_on_seen] = member_outputs(model, frozen, ctx.seen, impl, feature_layer)
    return memo[members_on_seen]

  return members_on_seen


def make_term(model, stacked, *, alpha: float, beta: float, impl: str = "vmap",
              kl_temperature: float = 1.0, members_on_seen=None):
  """`TermContext -> scalar`: `ensemble_loss` of the members on the batch the inverted
  classifier saw (same input transform). Pass the `members_on_seen` of another term over
  the same members (`make_members_on_seen`) to share their pass."""
  members_on_seen = members_on_seen or make_members_on_seen(model, stacked, impl=impl)

  def term(ctx):
    logits, _ = members_on_seen(ctx)
    return ensemble_loss(logits, ctx.batch["p"], ctx.batch["y"], alpha, beta, kl_temperature)

  return term


def make_cosine_term(model, stacked, *, impl: str = "vmap", feature_layer: str = "penultimate",
                     members_on_seen=None):
  """`TermContext -> scalar`: `members_class_cosine` on the batch the inverted classifier
  saw (same input transform); `members_on_seen` as in `make_term`."""
  members_on_seen = members_on_seen or make_members_on_seen(
      model, stacked, impl=impl, feature_layer=feature_layer)

  def term(ctx):
    _, features = members_on_seen(ctx)
    return members_class_cosine(features, ctx.batch["y"])

  return term


def resolve_impl(impl: str) -> str:
  if impl == "auto":
    return "unrolled" if jax.default_backend() == "cpu" else "vmap"
  return impl
