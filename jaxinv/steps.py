"""Pure training steps: `(state, batch, key) -> (state, metrics)`.

Each step folds the state's step number into the key it is given, so a run
needs one key per purpose and nothing random has to be saved to resume. The
frozen classifier travels inside the inversion state as an argument (never a
closure constant), which lets later code vmap over classifiers or generators.
"""

import zlib
from typing import Any, Callable, Mapping, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxinv import conditioning, feature_stats, losses

LOSS_TERMS = ("kl", "ce", "cosine", "orthogonality")
_AUGMENT_STREAM = zlib.crc32(b"augment")  # folded into a step's key for its augmentation draws
_ADVERSARY_STREAM = 0x61647673  # the attack's random start


@flax.struct.dataclass
class TrainState:
  """What an optimiser updates: only arrays, so it checkpoints as is."""

  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any


@flax.struct.dataclass
class InversionState:
  generator: TrainState
  classifier: Any  # frozen {"params", "batch_stats"}; never updated
  loss_weights: Any  # {"kl", "ce", "cosine", "orthogonality"} float32 scalars
  # The generator's dropout rate as a float32 scalar, or None for the module's own
  # field. An array lets an ensemble vmap over dropout rates (see `jaxinv.ensemble`).
  dropout_rate: Any = None


def init_train_state(variables, tx: optax.GradientTransformation) -> TrainState:
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))


def _apply_gradients(state: TrainState, tx, grads, batch_stats) -> TrainState:
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  # Keep the state's dtypes fixed (batch statistics of wider activations would
  # otherwise widen the state and retrace the step).
  batch_stats = jax.tree.map(lambda new, old: new.astype(old.dtype), batch_stats, state.batch_stats)
  return TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                    batch_stats=batch_stats, opt_state=opt_state)


def make_classifier_step(model: nn.Module, tx, *, label_smoothing: float = 0.0,
                         augment: Callable | None = None,
                         adversary: Callable | None = None) -> Callable:
  """Cross-entropy step on a batch `{"image": [B,H,W,C], "label": [B]}`, optionally with
  per-example weights `"weight": [B]`.

  `label_smoothing` > 0 trains against (1 − s)·one-hot + s/K; `augment`, when given, is
  `(images, key) -> images` applied to the batch first (e.g. `transforms.make_augmentation`).
  `adversary`, `(variables, images, labels, key) -> images` (`jaxinv.adversarial`),
  replaces the (augmented) batch by adversarial images before the loss: adversarial
  training. With all off the step is the plain cross-entropy step, unchanged.
  """

  def step(state: TrainState, batch, key):
    key = jax.random.fold_in(key, state.step)
    images = batch["image"]
    if augment is not None:
      # A key of its own: the dropout masks stay those of an unaugmented run.
      images = augment(images, jax.random.fold_in(key, _AUGMENT_STREAM))
    if adversary is not None:
      images = adversary({"params": state.params, "batch_stats": state.batch_stats}, images,
                         batch["label"], jax.random.fold_in(key, _ADVERSARY_STREAM))

    def loss_fn(params):
      (logits, _), updates = model.apply(
          {"params": params, "batch_stats": state.batch_stats}, images, train=True,
          rngs={"dropout": key}, mutable=["batch_stats"])
      if label_smoothing:
        per_example = jax.vmap(losses.smoothed_cross_entropy, in_axes=(0, 0, None))(
            logits, batch["label"], label_smoothing)
      else:
        per_example = jax.vmap(losses.cross_entropy)(logits, batch["label"])
      if "weight" in batch:  # class-weighted CE (the OOD garbage class): Σ w·CE / Σ w
        loss = jnp.sum(batch["weight"] * per_example) / jnp.sum(batch["weight"])
      else:
        loss = jnp.mean(per_example)
      return loss, (logits, updates.get("batch_stats", {}))

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_state = _apply_gradients(state, tx, grads, batch_stats)
    metrics = {
        "loss": loss,
        "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]),
        "grad_norm": optax.tree.norm(grads),
    }
    return new_state, metrics

  return step


def make_classifier_apply(model: nn.Module) -> Callable:
  """`(variables, images) -> (logits, aux)` in inference mode."""
  return lambda variables, images: model.apply(variables, images, train=False)


class TermContext(NamedTuple):
  """What an extra inversion term sees (see `make_inversion_step`'s `extra_terms`).

  `images` are the generated batch before `input_transform`; `logits`/`aux` the
  classifier's outputs on the (transformed) batch; `classifier_apply`, `(variables,
  images) -> (logits, aux)`, runs the frozen classifier in inference mode and
  `classifier_variables` are its (stop-gradient) variables, so a term may run it again
  (on a perturbed copy, or differentiate w.r.t. its weights); `key` is this term's own
  key, fresh every step."""

  images: jnp.ndarray
  logits: jnp.ndarray
  aux: Any
  batch: Any
  classifier_apply: Callable
  classifier_variables: Any
  key: jnp.ndarray
  # The batch the classifier saw (after `input_transform`) and the inputs of its
  # batch-norm layers on it, by layer path (see `jaxinv.feature_stats`).
  seen: Any = None
  bn_inputs: Any = None
  # The features the core diversity losses read (`aux[feature_layer]`).
  features: Any = None
  # A dict the step's terms share for this step only: terms that read the same intermediate
  # (e.g. other classifiers' outputs on `seen`) compute it once, so its backward pass runs
  # once too (XLA merges duplicate forward passes, not their gradients).
  memo: Any = None


# Named salts for the keys derived from a step's key, so adding a consumer never
# changes the dropout masks of existing runs (the generator keeps the step key).
_TRANSFORM_SALT = 1
_TERM_SALT = 2


def as_classifier_apply(classifier) -> Callable:
  """`(variables, images) -> (logits, aux)` in inference mode: one of jaxinv's own
  classifier modules (run with `train=False`), or such a function as is."""
  return make_classifier_apply(classifier) if isinstance(classifier, nn.Module) else classifier


def make_inversion_step(generator: nn.Module, classifier, tx,
                        feature_layer: str = "penultimate",
                        extra_terms: Mapping[str, Callable] | None = None,
                        input_transform: Callable | None = None,
                        kl_temperature: float = 1.0) -> Callable:
  """Generator step on a conditioning batch `{"z", "p", "y"}` (see `conditioning`).

  `classifier` is one of jaxinv's classifier modules or an apply function
  `(variables, images) -> (logits, aux)` (see `jaxinv.classifier`); it runs in
  inference mode (running statistics, no dropout), the generator in training mode
  (its dropout on); `aux[feature_layer]` are the features of the diversity losses.

  `extra_terms` maps names to `TermContext -> scalar` functions (priors,
  reconstruction terms); each is added to the loss with weight
  `state.loss_weights[name]` and reported as `loss_{name}`. `input_transform`,
  `(images, key) -> images`, is applied between generator and classifier (random
  jitter, flips: robustness to small transforms)."""
  classifier_apply = as_classifier_apply(classifier)
  extra_terms = dict(extra_terms or {})
  clash = set(extra_terms) & set(LOSS_TERMS)
  if clash:
    raise ValueError(f"Extra inversion terms {sorted(clash)} clash with the core terms {LOSS_TERMS}; "
                     "give them other names.")

  def step(state: InversionState, batch, key):
    gen = state.generator
    key = jax.random.fold_in(key, gen.step)
    frozen = jax.lax.stop_gradient(state.classifier)
    missing = [name for name in extra_terms if name not in state.loss_weights]
    if missing:
      raise ValueError(f"Extra inversion terms {missing} have no weight in state.loss_weights "
                       "(build the weights with steps.loss_weights(..., **extra_weights)).")

    def loss_fn(params):
      images, updates = generator.apply(
          {"params": params, "batch_stats": gen.batch_stats}, batch["z"], batch["p"], batch["y"],
          train=True, rngs={"dropout": key}, mutable=["batch_stats"],
          dropout_rate=state.dropout_rate)
      seen = images
      if input_transform is not None:
        seen = input_transform(images, jax.random.fold_in(key, _TRANSFORM_SALT))
      # Recording the batch-norm inputs is free when no term reads them (XLA drops them).
      (logits, aux), bn_inputs = feature_stats.capture_batch_norm_inputs(
          classifier_apply, frozen, seen)
      total, terms = losses.inversion_loss(logits, aux[feature_layer], batch["p"], batch["y"],
                                           state.loss_weights, kl_temperature)
      term_key = jax.random.fold_in(key, _TERM_SALT)
      memo = {}
      for name, term in sorted(extra_terms.items()):
        # Salted by the name (not the position), so adding a term leaves the others' keys.
        ctx = TermContext(images=images, logits=logits, aux=aux, batch=batch,
                          classifier_apply=classifier_apply,
                          classifier_variables=frozen, seen=seen, bn_inputs=bn_inputs,
                          features=aux[feature_layer], memo=memo,
                          key=jax.random.fold_in(term_key, zlib.crc32(name.encode()) & 0x7FFFFFFF))
        terms[name] = term(ctx)
        total = total + state.loss_weights[name] * terms[name]
      return total, (terms, logits, updates.get("batch_stats", {}))

    (total, (terms, logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        gen.params)
    new_state = state.replace(generator=_apply_gradients(gen, tx, grads, batch_stats))
    metrics = {
        "loss": total,
        **{f"loss_{name}": value for name, value in terms.items()},
        "target_accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["y"]),
        "grad_norm": optax.tree.norm(grads),
    }
    return new_state, metrics

  return step


def make_inversion_train_step(inversion_step: Callable, *, batch_size: int, num_classes: int,
                              latent_dim: int, mode: str, temperature: float = 1.0,
                              batch_sharding=None) -> Callable:
  """Fuses drawing the conditioning batch with the step: `(state, keys) -> (state, metrics)`.

  `keys` holds the run's named keys "conditioning" and "dropout"; both are
  folded with the step number, so the whole run is a function of one seed."""

  def train_step(state: InversionState, keys):
    cond_key = jax.random.fold_in(keys["conditioning"], state.generator.step)
    batch = conditioning.sample_batch(cond_key, batch_size, num_classes, latent_dim, mode,
                                      temperature)
    if batch_sharding is not None:
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    return inversion_step(state, batch, keys["dropout"])

  return train_step


def loss_weights(alpha: float, beta: float, gamma: float, delta: float, **extra: float):
  """The core weights by term name, plus `extra` weights for `extra_terms` of the same names."""
  weights = {name: jnp.float32(w) for name, w in zip(LOSS_TERMS, (alpha, beta, gamma, delta))}
  weights.update({name: jnp.float32(w) for name, w in extra.items()})
  return weights
