"""Multi-classifier inversion: the generator's images must also be accepted by other
classifiers (other seeds, other trainings, other architectures), so it cannot fit one
model's blind spots. Members of one architecture form a group: their variables are
stacked on a leading axis and they run vmapped ("vmap") or one after another in the
same program ("unrolled": on XLA:CPU vmapped convolutions are much slower than
unbatched ones, see `config.ensemble.impl`). The terms average over every member of
every group.

    groups = classifier_ensemble.group_by_architecture([(cnn, v1), (cnn, v2), (mlp, v3)])
    term = classifier_ensemble.make_term(groups, alpha=1.0, beta=4.0)
"""

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from jaxinv import diversity, losses, steps


def stack_variables(variables_list):
  """One tree with a leading member axis from a list of same-shaped variable trees."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *variables_list)


class MemberGroup(NamedTuple):
  """Members of one architecture: a jaxinv classifier module or an apply function
  `(variables, images) -> (logits, aux)`, their variables stacked on a leading axis, and
  each member's relative weight `[M]` in the α·KL + β·CE average and in the within-class
  cosine average (None: 1 each)."""
  model: Any
  stacked: Any
  weights: Any = None
  cosine_weights: Any = None


def group_by_architecture(members: Sequence[tuple[Any, Any]], weights: Sequence[float] | None = None,
                          cosine_weights: Sequence[float] | None = None) -> list[MemberGroup]:
  """`MemberGroup`s from `(model, variables)` pairs: equal models (the same module fields,
  or the same apply function) share a group, in the order each first appears. A group's
  variables must have one shape, as stacking needs. `weights` and `cosine_weights`, one
  relative weight per member in `members`' order (None: equal), follow their members."""
  if not members:
    raise ValueError("group_by_architecture needs at least one (model, variables) member.")
  per_member = {}
  for name, given in (("weights", weights), ("cosine_weights", cosine_weights)):
    if given is None or len(given) == 0:
      per_member[name] = None  # equal weights
      continue
    given = [float(w) for w in given]
    if len(given) != len(members) or min(given) < 0:
      raise ValueError(f"group_by_architecture: {name} needs one non-negative weight per member "
                       f"({len(members)}), got {given}.")
    per_member[name] = given
  models, indices = [], []
  for index, (model, _) in enumerate(members):
    for i, known in enumerate(models):
      if known == model:
        indices[i].append(index)
        break
    else:
      models.append(model)
      indices.append([index])
  groups = []
  for model, group in zip(models, indices):
    variables = [members[i][1] for i in group]
    if len({str(jax.tree.map(jnp.shape, v)) for v in variables}) > 1:
      raise ValueError(f"Members of one architecture ({type(model).__name__}) have variables of "
                       "different shapes; give each architecture's members equal fields.")
    groups.append(MemberGroup(model, stack_variables(variables), *(
        None if per_member[name] is None
        else jnp.asarray([per_member[name][i] for i in group], jnp.float32)
        for name in ("weights", "cosine_weights"))))
  return groups


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


def _member_cosines(features, y):
  """`[M]`: `diversity.class_cosine` of each member's features in `[M, B, F]`."""
  return jax.vmap(diversity.class_cosine, in_axes=(0, None))(features, y)


def members_class_cosine(features, y, weights=None):
  """Mean over members of `diversity.class_cosine` of each member's `[M, B, F]` features:
  the within-class cosine measured by the other classifiers, e.g. a robustly trained one
  whose features follow what an image looks like rather than the target's blind spots;
  with `weights` `[M]` the weighted mean."""
  return _weighted_mean(_member_cosines(features, y), weights)


def ensemble_loss(logits, p, y, alpha: float, beta: float, kl_temperature: float = 1.0,
                  weights=None):
  """Mean over members of α·KL(p ‖ q_m) + β·CE(q_m, y), each averaged over the batch; the
  KL at `kl_temperature` as in the inversion loss (`losses.kl_divergence`); with
  `weights` `[M]`, the weighted mean Σ w_m·loss_m / Σ w_m."""
  kl_one = lambda p, logits: losses.kl_divergence(p, logits, kl_temperature)
  kl = jax.vmap(jax.vmap(kl_one), in_axes=(None, 0))(p, logits)
  ce = jax.vmap(jax.vmap(losses.cross_entropy), in_axes=(0, None))(logits, y)
  if weights is None:
    return alpha * jnp.mean(kl) + beta * jnp.mean(ce)
  return _weighted_mean(alpha * jnp.mean(kl, axis=1) + beta * jnp.mean(ce, axis=1), weights)


def _weighted_mean(values, weights=None):
  """Σ w_m·v_m / Σ w_m over a leading member axis (the plain mean without weights)."""
  if weights is None:
    return jnp.mean(values)
  return jnp.sum(weights * values) / jnp.sum(weights)


def _group_weights(groups, field: str):
  """`[M]`: every member's weight (`weights` or `cosine_weights`), in the groups' order;
  None when no group has any (equal weights)."""
  if all(getattr(g, field) is None for g in groups):
    return None
  return jnp.concatenate([
      jnp.ones(jax.tree.leaves(g.stacked)[0].shape[0]) if getattr(g, field) is None
      else jnp.asarray(getattr(g, field), jnp.float32) for g in groups])


def make_members_on_seen(groups: Sequence[MemberGroup], *, impl: str = "vmap",
                         feature_layer: str = "penultimate"):
  """`TermContext -> [([M_g, B, K] logits, [M_g, B, F_g] features) per group]`:
  `member_outputs` of each `MemberGroup` on the batch the inverted classifier saw (same
  input transform), the members frozen. Kept in the step's `ctx.memo`, so the terms built
  on one such function (`make_term`, `make_cosine_term`) run the members forward and
  backward once per step."""
  groups = _checked(groups)
  frozen = [MemberGroup(g.model, jax.lax.stop_gradient(g.stacked)) for g in groups]

  def members_on_seen(ctx):
    memo = {} if ctx.memo is None else ctx.memo
    if members_on_seen not in memo:
      memo[members_on_seen] = [member_outputs(g.model, g.stacked, ctx.seen, impl, feature_layer)
                               for g in frozen]
    return memo[members_on_seen]

  return members_on_seen


def _checked(groups) -> list[MemberGroup]:
  """`groups` as a list of `MemberGroup`s (one group alone is taken as a list of one)."""
  groups = [groups] if isinstance(groups, MemberGroup) else [MemberGroup(*g) for g in groups]
  if not groups:
    raise ValueError("The multi-classifier terms need at least one MemberGroup "
                     "(classifier_ensemble.group_by_architecture).")
  return groups


def make_term(groups: Sequence[MemberGroup], *, alpha: float, beta: float, impl: str = "vmap",
              kl_temperature: float = 1.0, members_on_seen=None):
  """`TermContext -> scalar`: `ensemble_loss` of every member of `groups` (weighted by their
  `weights`) on the batch the inverted classifier saw (same input transform). Pass the
  `members_on_seen` of another term over the same groups (`make_members_on_seen`) to share
  their pass."""
  groups = _checked(groups)
  weights = _group_weights(groups, "weights")
  members_on_seen = members_on_seen or make_members_on_seen(groups, impl=impl)

  def term(ctx):
    logits = jnp.concatenate([group_logits for group_logits, _ in members_on_seen(ctx)])
    return ensemble_loss(logits, ctx.batch["p"], ctx.batch["y"], alpha, beta, kl_temperature,
                         weights)

  return term


def make_cosine_term(groups: Sequence[MemberGroup], *, impl: str = "vmap",
                     feature_layer: str = "penultimate", members_on_seen=None):
  """`TermContext -> scalar`: the within-class cosine in each member's features, averaged
  over every member of `groups` (weighted by their `cosine_weights`), on the batch the
  inverted classifier saw; `members_on_seen` as in `make_term`."""
  groups = _checked(groups)
  weights = _group_weights(groups, "cosine_weights")
  members_on_seen = members_on_seen or make_members_on_seen(
      groups, impl=impl, feature_layer=feature_layer)

  def term(ctx):
    # Each group's features have their own width: one cosine per member, then the mean.
    cosines = jnp.concatenate([_member_cosines(f, ctx.batch["y"]) for _, f in members_on_seen(ctx)])
    return _weighted_mean(cosines, weights)

  return term


def resolve_impl(impl: str) -> str:
  if impl == "auto":
    return "unrolled" if jax.default_backend() == "cpu" else "vmap"
  return impl
