"""Ensembles: S generators trained in one compiled program.

Members share the frozen classifier and differ in seed and, optionally, in the
loss weights α, β, γ, δ and the dropout rate (`config.ensemble`, one value per
member or empty for the run's own value). Parameters, optimizer states, loss
weights, dropout rates and RNG keys carry a leading member axis. The single-
generator step is either `jax.vmap`ped over that axis or traced once per member
in the same program (`config.ensemble.impl`); either way member `i` follows the
same update rule as a lone run with its settings.

A third form, `shared_classifier`, traces each member's generator on its own but
runs the classifier once over all members' images: the frozen classifier is the
same for every member and handles each image independently (inference mode), so
this computes the same losses and gradients with one large classifier pass instead
of S small ones — what keeps a CPU busy when one member's batch is small.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv import conditioning, losses, rng, steps

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


def members(config) -> list[Member]:
  """The members `config.ensemble` describes (empty lists take the run's values)."""
  e, inv = config.ensemble, config.inversion
  count = len(e.seeds)
  defaults = {"alpha": inv.alpha, "beta": inv.beta, "gamma": inv.gamma, "delta": inv.delta,
              "dropout_rate": config.generator.dropout_rate}
  values = {name: list(e[name]) or [defaults[name]] * count for name in HYPER_FIELDS}
  return [Member(int(e.seeds[i]), *(float(values[name][i]) for name in HYPER_FIELDS))
          for i in range(count)]


def member_keys(member_list) -> dict:
  """Named keys per member, stacked: `{"init": [S] keys, …}` — member i's keys are those
  a lone run with `seed = member_list[i].seed` would use."""
  per_member = [rng.named_keys(m.seed, list(MEMBER_KEYS)) for m in member_list]
  return {name: jnp.stack([keys[name] for keys in per_member]) for name in MEMBER_KEYS}


def hyperparameters(member_list) -> tuple[dict, jnp.ndarray]:
  """Stacked loss weights `{"kl": [S], …}` and dropout rates `[S]`."""
  weights = [steps.loss_weights(m.alpha, m.beta, m.gamma, m.delta) for m in member_list]
  stacked = {name: jnp.stack([w[name] for w in weights]) for name in weights[0]}
  return stacked, jnp.asarray([m.dropout_rate for m in member_list], jnp.float32)


IMPLS = ("auto", "vmap", "unrolled", "shared_classifier")


def resolve_impl(impl: str) -> str:
  if impl == "auto":
    # XLA:CPU runs vmapped convolutions with per-member kernels as slow grouped
    # convolutions; on accelerators vmap batches the members well.
    return "shared_classifier" if jax.default_backend() == "cpu" else "vmap"
  return impl


def make_train_step(train_step, count: int, impl: str = "auto", *, shared_classifier_step=None):
  """The ensemble step for `count` members; see `config.ensemble.impl`.

  `train_step` is the single-generator `(state, keys)` step; `shared_classifier_step`
  the step `shared_classifier_train_step` built, used for that impl."""
  impl = resolve_impl(impl)
  if impl == "vmap":
    return vmap_train_step(train_step)
  if impl == "shared_classifier":
    if shared_classifier_step is None:
      raise ValueError("ensemble.impl='shared_classifier' needs the step from shared_classifier_train_step")
    return shared_classifier_step
  return unrolled_train_step(train_step, count)


def shared_classifier_train_step(generator, classifier, tx, count: int, *, batch_size: int,
                                 num_classes: int, latent_dim: int, mode: str,
                                 feature_layer: str = "penultimate", batch_sharding=None):
  """Ensemble step (same contract as `vmap_train_step`) whose classifier pass covers
  all members' images at once. Member i draws its conditioning batch and dropout
  masks from its own keys exactly as `steps.make_inversion_train_step` would."""

  def ensemble_step(state, keys):
    take = lambda tree, i: jax.tree.map(lambda x: x[i], tree)
    gens = [take(state.generator, i) for i in range(count)]
    batches, dropout_keys = [], []
    for i, gen in enumerate(gens):
      batch = conditioning.sample_batch(jax.random.fold_in(keys["conditioning"][i], gen.step),
                                        batch_size, num_classes, latent_dim, mode)
      if batch_sharding is not None:
        batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
      batches.append(batch)
      dropout_keys.append(jax.random.fold_in(keys["dropout"][i], gen.step))
    frozen = jax.lax.stop_gradient(state.classifier)

    def loss_fn(all_params):
      outputs = [steps.generate(generator, params, gen.batch_stats, batch, key, state.dropout_rate[i])
                 for i, (params, gen, batch, key) in enumerate(zip(all_params, gens, batches, dropout_keys))]
      logits, aux = classifier.apply(frozen, jnp.concatenate([images for images, _ in outputs]),
                                     train=False)
      totals, extras = [], []
      for i, batch in enumerate(batches):
        rows = slice(i * batch_size, (i + 1) * batch_size)
        total, terms = losses.inversion_loss(logits[rows], aux[feature_layer][rows], batch["p"],
                                             batch["y"], take(state.loss_weights, i))
        totals.append(total)
        extras.append((total, terms, logits[rows], outputs[i][1]))
      # Members' parameters are disjoint: the gradient of the sum is each member's own.
      return sum(totals), extras

    grads, extras = jax.grad(loss_fn, has_aux=True)([gen.params for gen in gens])
    new_gens, metrics = [], []
    for gen, grad, batch, (total, terms, logits, batch_stats) in zip(gens, grads, batches, extras):
      new_gens.append(steps.apply_gradients(gen, tx, grad, batch_stats))
      metrics.append(steps.inversion_metrics(total, terms, logits, batch["y"], grad))
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
    return state.replace(generator=stack(new_gens)), _flatten(stack(metrics))

  return ensemble_step


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
