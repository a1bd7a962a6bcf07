"""Network inversion of any classifier as an `init` / `step` pair of pure functions.

    inv = make_inversion(classifier, image_shape=(28, 28, 1))
    state = inv.init(jax.random.key(0))           # a pytree: generator, optimizer, classifier
    state, metrics = inv.step(state, jax.random.key(1))

`init` and `step` are pure (vmap them over seeds, `lax.scan` them over steps);
`jit_init` / `jit_step` compile them once over the data mesh with replicated, donated
state, as the `jaxinv invert` command runs them. Each step draws its conditioning
batch and dropout masks from `fold_in(key, state step)`, so passing the same key every
step is the usual use and a run is a function of that key.
"""

from typing import Callable, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxinv import classifier as classifier_lib
from jaxinv import ensemble, rng, sampling, sharding
from jaxinv import steps as steps_lib
from jaxinv.models.generator import ConditionedGenerator

# The names of the keys a step and an initialisation derive from the key they are given
# (the same names the `jaxinv invert` command derives from its seed).
INIT_KEY, CONDITIONING_KEY, DROPOUT_KEY = "init", "conditioning", "dropout"


class Inversion(NamedTuple):
  """A configured inversion: pure `init(key) -> state` and `step(state, key) -> (state,
  metrics)`, and what they were built from."""

  init: Callable
  step: Callable
  init_generator: Callable  # key -> the generator's TrainState (the part `init` draws)
  generator: nn.Module
  classifier: classifier_lib.Classifier
  optimizer: optax.GradientTransformation
  loss_weights: dict
  dropout_rate: jax.Array
  num_classes: int
  image_shape: tuple
  batch_size: int
  mesh: jax.sharding.Mesh
  members: tuple = ()  # ensemble members (`ensemble.Member`); empty for one generator

  def jit_init(self) -> Callable:
    """`init` with its outputs replicated over the mesh: the generator created in place
    on every device, the classifier's parameters copied there (never compiled in as
    constants); every array is a copy, so `jit_step`'s donation never frees this
    inversion's own (it can be initialised again) or the caller's."""
    def init(key):
      return steps_lib.InversionState(
          generator=sharding.create_replicated(self.init_generator, self.mesh, key),
          classifier=sharding.put_replicated(self.classifier.params, self.mesh, copy=True),
          loss_weights=sharding.put_replicated(self.loss_weights, self.mesh, copy=True),
          dropout_rate=sharding.put_replicated(self.dropout_rate, self.mesh, copy=True))
    return init

  def jit_step(self) -> Callable:
    """`step` compiled once over the mesh: the batch is split along the data axis, the
    state is replicated and donated (the old state is invalid after a call)."""
    replicated = sharding.replicated(self.mesh)
    return jax.jit(self.step, donate_argnums=0, out_shardings=(replicated, replicated))


def paper_generator(num_classes: int, image_shape: Sequence[int], *, mode: str = "vector_matrix",
                    width: int = 32, dropout_rate: float = 0.2, **fields) -> ConditionedGenerator:
  """The paper's conditioned generator for `image_shape` images of `num_classes` classes
  (see `jaxinv.models.generator.ConditionedGenerator` for the other fields)."""
  return ConditionedGenerator(num_classes=num_classes, image_shape=tuple(image_shape), mode=mode,
                              width=width, dropout_rate=dropout_rate, **fields)


def default_optimizer(learning_rate: float = 2e-3, steps: int = 1500,
                      adam_eps: float = 1e-6) -> optax.GradientTransformation:
  """Adam with a cosine decay to zero over `steps`: the last steps polish the rarest
  failures away. An eps of 1e-6 keeps runs on 1 and N devices within 1e-5 of each other."""
  return optax.adam(optax.cosine_decay_schedule(learning_rate, max(steps, 1)), eps=adam_eps)


def _as_classifier(classifier) -> classifier_lib.Classifier:
  if isinstance(classifier, classifier_lib.Classifier):
    return classifier
  if isinstance(classifier, tuple) and len(classifier) == 2 and callable(classifier[0]):
    return classifier_lib.Classifier(*classifier)
  raise TypeError(f"classifier must be a jaxinv.Classifier or an (apply_fn, params) pair, got "
                  f"{type(classifier).__name__}; build one with jaxinv.from_linen, from_function or "
                  "from_nnx.")


def make_inversion(classifier, image_shape: Sequence[int], *, num_classes: int | None = None,
                   generator: nn.Module | None = None, mode: str = "vector_matrix",
                   compute_dtype=None,
                   batch_size: int = 64, steps: int = 1500, learning_rate: float = 2e-3,
                   optimizer: optax.GradientTransformation | None = None,
                   alpha: float = 1.0, beta: float = 4.0, gamma: float = 1.0, delta: float = 1.0,
                   kl_temperature: float = 1.0,
                   terms: Mapping[str, tuple[float, Callable]] | None = None,
                   input_transform: Callable | None = None,
                   feature_layer: str = classifier_lib.FEATURES,
                   members: Sequence[ensemble.Member] = (), ensemble_impl: str = "auto",
                   mesh: jax.sharding.Mesh | None = None, check: bool = True) -> Inversion:
  """An inversion of `classifier` (a `jaxinv.Classifier` or `(apply_fn, params)` pair).

  - `image_shape`: (H, W, C) of the images to generate (NHWC, in [-1, 1]);
    `num_classes` is read from the classifier when not given.
  - `generator`: any Linen module with jaxinv's generator interface (default:
    `paper_generator(num_classes, image_shape, mode=mode, dtype=compute_dtype)`).
  - `compute_dtype`: e.g. `jnp.bfloat16` for the default generator's computations
    (parameters, optimizer state, losses and metrics stay float32); a classifier runs in
    its own dtype (`InputSpec.dtype` casts its input; jaxinv's classifiers have a `dtype`
    field).
  - Loss: `alpha`·KL(p‖q) + `beta`·CE(q, y) + `gamma`·pairwise cosine + `delta`·Gram
    orthogonality of the features, with q = softmax(logits / `kl_temperature`) in the KL
    term (1: the paper's; `jaxinv.losses.kl_divergence`); `terms` adds `{name: (weight, term)}` with
    `term(steps.TermContext) -> scalar` (priors, feature statistics, multi-classifier,
    reconstruction terms; see `jaxinv.priors`, `jaxinv.feature_stats`,
    `jaxinv.classifier_ensemble`, `jaxinv.reconstruction`).
  - `input_transform(images, key) -> images` runs between generator and classifier
    (`jaxinv.transforms.make_input_transform`: jitter, scale, flips).
  - `optimizer` defaults to `default_optimizer(learning_rate, steps)`.
  - `members`: train an ensemble, one generator per `ensemble.Member` (own seed, loss
    weights and dropout rate) in one program; `init`/`step` then take keys stacked per
    member (`ensemble_keys(members)`) and every state leaf has a member axis.
  - `mesh`: the data mesh (default: every device); `batch_size` must divide over it.
  - `check`: probe the classifier now (shapes, classes, finite logits), before any
    step compiles.
  """
  classifier = _as_classifier(classifier)
  image_shape = tuple(int(d) for d in image_shape)
  if check:
    num_classes = classifier_lib.check(classifier, image_shape, num_classes)
  elif num_classes is None:
    num_classes = int(jax.eval_shape(classifier.apply_fn, classifier.params,
                                     jnp.zeros((1, *image_shape)))[0].shape[-1])
  if generator is None:
    generator = paper_generator(num_classes, image_shape, mode=mode, dtype=compute_dtype)
  elif (generator.num_classes, tuple(generator.image_shape)) != (num_classes, image_shape):
    raise ValueError(f"The generator makes {tuple(generator.image_shape)} images of "
                     f"{generator.num_classes} classes, but the classifier takes {image_shape} images "
                     f"of {num_classes} classes; build the generator for the classifier's task.")
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}.")
  mesh = sharding.make_mesh() if mesh is None else mesh
  sharding.check_batch_size(batch_size, mesh, "batch_size")
  optimizer = default_optimizer(learning_rate, steps) if optimizer is None else optimizer
  terms = dict(terms or {})
  extra_terms = {name: term for name, (_, term) in terms.items()}
  extra_weights = {name: float(weight) for name, (weight, _) in terms.items()}
  members = tuple(members)

  inner = steps_lib.make_inversion_step(generator, classifier.apply_fn, optimizer, feature_layer,
                                    extra_terms=extra_terms, input_transform=input_transform,
                                    kl_temperature=kl_temperature)
  one_step = steps_lib.make_inversion_train_step(
      inner, batch_size=batch_size, num_classes=num_classes, latent_dim=generator.latent_dim,
      mode=generator.mode, temperature=generator.temperature,
      batch_sharding=sharding.data_sharded(mesh) if mesh.size > 1 else None)

  def keyed_step(state, key):
    return one_step(state, rng.named_subkeys(key, (CONDITIONING_KEY, DROPOUT_KEY)))

  def init_generator(key):
    key = rng.named_subkeys(key, (INIT_KEY,))[INIT_KEY]
    k = generator.num_classes
    variables = generator.init({"params": key}, jnp.zeros((2, generator.latent_dim)),
                               jnp.full((2, k), 1.0 / k), jnp.zeros((2,), jnp.int32), train=False)
    return steps_lib.init_train_state(variables, optimizer)

  if members:
    weights, dropout_rate = ensemble.hyperparameters(members, extra_weights)
    step = ensemble.make_train_step(keyed_step, len(members), ensemble_impl)
    init_generators = jax.vmap(init_generator)
  else:
    weights = steps_lib.loss_weights(alpha, beta, gamma, delta, **extra_weights)
    dropout_rate = jnp.float32(generator.dropout_rate)
    step, init_generators = keyed_step, init_generator

  def init(key):
    return steps_lib.InversionState(generator=init_generators(key), classifier=classifier.params,
                                loss_weights=weights, dropout_rate=dropout_rate)

  return Inversion(init=init, step=step, init_generator=init_generators, generator=generator,
                   classifier=classifier, optimizer=optimizer, loss_weights=weights,
                   dropout_rate=dropout_rate, num_classes=num_classes, image_shape=image_shape,
                   batch_size=batch_size, mesh=mesh, members=members)


def ensemble_keys(members: Sequence[ensemble.Member]) -> jax.Array:
  """One key per member, `key(member.seed)`, stacked: what an ensemble's `init` and
  `step` take (member i then follows a lone run with its seed)."""
  return jnp.stack([jax.random.key(m.seed) for m in members])


def generator_variables(state) -> dict:
  """The generator's `{"params", "batch_stats"}` from an inversion state (or a generator
  `TrainState`)."""
  generator = state.generator if isinstance(state, steps_lib.InversionState) else state
  return {"params": generator.params, "batch_stats": generator.batch_stats}


def sample(inversion, state_or_variables, labels, key, *, dropout: bool = True,
           batch_size: int = 500):
  """Images `[N, H, W, C]` in [-1, 1] for `labels` (numpy), from an `Inversion` (or a
  generator module) and its state (or the generator's variables). Dropout stays on by
  default: the generator is used as it was trained (see `jaxinv.sampling`)."""
  generator = inversion.generator if isinstance(inversion, Inversion) else inversion
  variables = state_or_variables
  if isinstance(state_or_variables, (steps_lib.InversionState, steps_lib.TrainState)):
    variables = generator_variables(state_or_variables)
  if isinstance(inversion, Inversion) and inversion.members:
    raise ValueError("This inversion trains an ensemble (a member axis on every leaf); sample one "
                     "member with jax.tree.map(lambda x: x[i], jaxinv.generator_variables(state)) "
                     "and its generator, or all with jaxinv.batch_inversion.sample_many.")
  return sampling.sample(generator, jax.device_get(variables), labels, key,
                         batch_size=batch_size, dropout=dropout)
