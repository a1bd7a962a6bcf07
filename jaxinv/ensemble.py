"""Ensembles: S generators trained in one compiled program.

Members share the frozen classifier and differ in seed and, optionally, in the
loss weights α, β, γ, δ and the dropout rate (`config.ensemble`, one value per
member or empty for the run's own value). Parameters, optimizer states, loss
weights, dropout rates and RNG keys carry a leading member axis. The single-
generator step is either `jax.vmap`ped over that axis or traced once per member
in the same program (`config.ensemble.impl`); either way member `i` follows the
same update rule as a lone run with its settings.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv import rng, steps

HYPER_FIELDS = ("alpha", "beta", "gamma", "delta", "dropout_rate")
MEMBER_KEYS = ("init", "conditioning", "dropout", "eval")


@dataclasses.dataclass(frozen=True)
class Member:
  seed: int
  alpha: float
  beta: float
  gamma: float
  delta: float
  dropout_rate: float


def member_keys(member_list) -> dict:
  """Named keys per member, stacked: `{"init": [S] keys, …}` — member i's keys are those
  a lone run with `seed = member_list[i].seed` would use."""
  per_member = [rng.named_keys(m.seed, list(MEMBER_KEYS)) for m in member_list]
  return {name: jnp.stack([keys[name] for keys in per_member]) for name in MEMBER_KEYS}


def hyperparameters(member_list, extra_weights=None) -> tuple[dict, jnp.ndarray]:
  """Stacked loss weights `{"kl": [S], …}` and dropout rates `[S]`; `extra_weights`
  (the weights of extra terms, shared by every member) are stacked alongside."""
  weights = [steps.loss_weights(m.alpha, m.beta, m.gamma, m.delta, **(extra_weights or {}))
             for m in member_list]
  stacked = {name: jnp.stack([w[name] for w in weights]) for name in weights[0]}
  return stacked, jnp.asarray([m.dropout_rate for m in member_list], jnp.float32)


def resolve_impl(impl: str) -> str:
  if impl == "auto":
    return "unrolled" if jax.default_backend() == "cpu" else "vmap"
  return impl


def make_train_step(train_step, count: int, impl: str = "auto"):
  """The ensemble step for `count` members; see `config.ensemble.impl`."""
  if resolve_impl(impl) == "vmap":
    return vmap_train_step(train_step)
  return unrolled_train_step(train_step, count)


def unrolled_train_step(train_step, count: int):
  """Same contract as `vmap_train_step`, members traced one after another in one program."""

  def ensemble_step(state, keys):
    outs = []
    for i in range(count):
      take = lambda tree: jax.tree.map(lambda x: x[i], tree)
      member = state.replace(generator=take(state.generator), loss_weights=take(state.loss_weights),
                             dropout_rate=state.dropout_rate[i])
      outs.append(train_step(member, take(keys)))
    generator = jax.tree.map(lambda *xs: jnp.stack(xs), *[o[0].generator for o in outs])
    metrics = jax.tree.map(lambda *xs: jnp.stack(xs), *[o[1] for o in outs])
    return state.replace(generator=generator), _flatten(metrics)

  return ensemble_step


def vmap_train_step(train_step):
  """`(state, keys) -> (state, metrics)` over a member axis: generator state, loss
  weights, dropout rates and keys are per member, the classifier is shared.

  Metrics come back flat — `"loss/3"` is member 3's loss, `"loss"` the members' mean —
  so the logging and finiteness checks of a single run apply unchanged."""

  def ensemble_step(state, keys):
    def member_step(generator, loss_weights, dropout_rate, member_keys):
      # The classifier stays unbatched: one copy, read by every member.
      member = state.replace(generator=generator, loss_weights=loss_weights,
                             dropout_rate=dropout_rate)
      new, metrics = train_step(member, member_keys)
      return new.generator, metrics

    generator, metrics = jax.vmap(member_step)(state.generator, state.loss_weights,
                                               state.dropout_rate, keys)
    return state.replace(generator=generator), _flatten(metrics)

  return ensemble_step


def _flatten(metrics: dict) -> dict:
  """`{"loss": [S]}` → `{"loss": mean, "loss/0": …, "loss/S-1": …}`."""
  flat = {name: jnp.mean(values) for name, values in metrics.items()}
  for name, values in metrics.items():
    flat.update({f"{name}/{i}": values[i] for i in range(values.shape[0])})
  return flat


def unstack(tree, index: int):
  return jax.tree.map(lambda x: np.asarray(x)[index], tree)
