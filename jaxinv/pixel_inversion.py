"""The DeepInversion baseline (Yin et al. 2020): optimise the pixels of a batch of
images directly, with the same inversion loss and priors as the generator
(`steps.make_inversion_step`), so both families compare on the same metrics.

Each image has its own pixels and its own label; the per-example terms (KL, CE,
image priors) are vmapped over the batch, and the batch-statistic terms
(feature statistics, cosine, orthogonality) see the batch, as in DeepInversion.
Pixels are clipped to [-1, 1] after every update.
"""

from typing import Any, Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import optax

from jaxinv import feature_stats, losses, steps

_TRANSFORM_SALT = 1
_TERM_SALT = 2


@flax.struct.dataclass
class PixelState:
  step: jnp.ndarray
  pixels: jnp.ndarray  # [B, H, W, C] in [-1, 1]
  opt_state: Any
  classifier: Any  # frozen {"params", "batch_stats"}
  loss_weights: Any  # as `InversionState.loss_weights`


def init_state(key, labels_count: int, image_shape, tx, classifier_variables, loss_weights,
               init_std: float) -> PixelState:
  """Pixels drawn from N(0, init_std²), clipped to [-1, 1]."""
  pixels = jnp.clip(init_std * jax.random.normal(key, (labels_count, *image_shape)), -1.0, 1.0)
  return PixelState(step=jnp.zeros((), jnp.int32), pixels=pixels, opt_state=tx.init(pixels),
                    classifier=classifier_variables, loss_weights=loss_weights)


def make_pixel_step(classifier, tx, feature_layer: str = "penultimate",
                    extra_terms: Mapping[str, Callable] | None = None,
                    input_transform: Callable | None = None,
                    kl_temperature: float = 1.0) -> Callable:
  """`(state, batch {"p", "y"}, key) -> (state, metrics)`: one Adam step on the pixels.
  `classifier`: a jaxinv classifier module or an apply function (`steps.as_classifier_apply`)."""
  classifier_apply = steps.as_classifier_apply(classifier)
  extra_terms = dict(extra_terms or {})

  def step(state: PixelState, batch, key):
    key = jax.random.fold_in(key, state.step)
    frozen = jax.lax.stop_gradient(state.classifier)

    def loss_fn(pixels):
      seen = pixels
      if input_transform is not None:
        seen = input_transform(pixels, jax.random.fold_in(key, _TRANSFORM_SALT))
      (logits, aux), bn_inputs = feature_stats.capture_batch_norm_inputs(
          classifier_apply, frozen, seen)
      total, terms = losses.inversion_loss(logits, aux[feature_layer], batch["p"], batch["y"],
                                           state.loss_weights, kl_temperature)
      term_key = jax.random.fold_in(key, _TERM_SALT)
      memo = {}
      for i, (name, term) in enumerate(sorted(extra_terms.items())):
        ctx = steps.TermContext(images=pixels, logits=logits, aux=aux, batch=batch,
                                classifier_apply=classifier_apply, classifier_variables=frozen,
                                key=jax.random.fold_in(term_key, i), seen=seen, bn_inputs=bn_inputs,
                                features=aux[feature_layer], memo=memo)
        terms[name] = term(ctx)
        total = total + state.loss_weights[name] * terms[name]
      return total, (terms, logits)

    (total, (terms, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.pixels)
    updates, opt_state = tx.update(grads, state.opt_state, state.pixels)
    pixels = jnp.clip(optax.apply_updates(state.pixels, updates), -1.0, 1.0)
    metrics = {"loss": total, **{f"loss_{name}": value for name, value in terms.items()},
               "target_accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["y"])}
    return state.replace(step=state.step + 1, pixels=pixels, opt_state=opt_state), metrics

  return step


def optimise(step: Callable, state: PixelState, batch, key, num_steps: int):
  """Runs `num_steps` steps in one compiled loop; returns `(state, last metrics)`."""
  def body(carry, _):
    state, _ = carry
    return step(state, batch, key), None

  _, first = jax.eval_shape(step, state, batch, key)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), first)
  (state, metrics), _ = jax.lax.scan(body, (state, zeros), None, length=num_steps)
  return state, metrics
