"""Train the classifier that is later inverted: `run(config, workdir)`."""

import logging
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from etils.epath import Path

from jaxinv import adversarial, checkpoint, data, distributed, metrics, paths, plotting, rng, sharding, steps
from jaxinv import lookahead, subsets, transforms
from jaxinv import config as config_lib
from jaxinv.models import classifiers
from jaxinv import loop
from jaxinv.runs.workdir import Workdir, batched, read_config

EVAL_BATCH = 500
log = logging.getLogger(__name__)


def build_model(config, num_classes: int, dtype=None):
  """The classifier of `config`; `dtype` its compute dtype (None: float32, Flax's default)."""
  extra = {"batch_norm": True} if config.classifier.model == "mlp" and config.classifier.mlp_batch_norm else {}
  if config.classifier.model == "cnn":
    extra["conv_impl"] = config.classifier.conv_impl
  if config.classifier.model == "airbench":  # no dropout: the recipe regularises otherwise
    widths = {"widths": tuple(config.classifier.widths)} if config.classifier.widths else {}
    return classifiers.build_classifier("airbench", num_classes,
                                        conv_impl=config.classifier.conv_impl, **widths)
  return classifiers.build_classifier(config.classifier.model, num_classes,
                                      dropout_rate=config.classifier.dropout_rate, dtype=dtype, **extra)


def epoch_steps(num_examples: int, batch_size: int) -> int:
  """Full batches per epoch (the last partial batch is dropped); at least one."""
  if num_examples < batch_size:
    raise ValueError(f"classifier.batch_size={batch_size} exceeds the {num_examples} training "
                     "examples; lower the batch size.")
  return num_examples // batch_size


class EmaState(NamedTuple):
  ema: Any  # exponential moving average of the parameters after each update


def track_ema(decay: float) -> optax.GradientTransformation:
  """Leaves the updates as they are and keeps an EMA of the updated parameters in its
  state: the average is checkpointed and resumed with the optimiser, nothing else."""

  def init(params):
    # A copy, not the parameters' own buffers: a step that donates its state would
    # otherwise donate one buffer twice.
    return EmaState(jax.tree.map(lambda p: jnp.array(p, copy=True), params))

  def update(updates, state, params):
    new_params = optax.apply_updates(params, updates)
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, new_params)
    return updates, EmaState(ema)

  return optax.GradientTransformation(init, update)


def make_optimizer(config, total_steps: int):
  """The classifier's optimiser: "adamw" (cosine-decayed AdamW) or "nesterov" (airbench's
  SGD recipe, `nesterov_recipe`); then the weight EMA or lookahead if the config asks."""
  c = config.classifier
  if c.optimizer == "nesterov":
    tx = nesterov_recipe(c, total_steps)
  else:
    schedule = optax.cosine_decay_schedule(c.learning_rate, max(total_steps, 1))
    tx = optax.adamw(schedule, eps=c.adam_eps, weight_decay=c.weight_decay)
  if c.ema_decay:
    tx = optax.chain(tx, track_ema(c.ema_decay))
  if c.lookahead_period:
    tx = optax.chain(tx, lookahead.lookahead(c.lookahead_period, max(total_steps, 1)))
  return tx


def augmentation(config):
  """The training-data augmentation of `config.classifier` (`transforms.make_augmentation`),
  or None when its flip, translate and noise_std are off."""
  c = config.classifier
  return transforms.make_augmentation(flip=c.flip, translate=c.translate, noise_std=c.noise_std)


def triangle_schedule(peak_value: float, total_steps: int, start: float = 0.2, end: float = 0.07,
                      peak_at: float = 0.23):
  """Linear warm-up from start·peak to peak at `peak_at` of the run, then linear to end·peak."""
  points = jnp.array([0.0, peak_at * total_steps, float(total_steps)])
  values = peak_value * jnp.array([start, 1.0, end])
  return lambda step: jnp.interp(step, points, values)


def _param_group(path, _) -> str:
  """airbench's parameter groups: the whitening kernel and the batch-norm scales stay fixed,
  the whitening bias trains early only, the batch-norm biases at a higher rate."""
  names = [getattr(k, "key", str(k)) for k in path]
  module, leaf = names[-2] if len(names) > 1 else "", names[-1]
  if module == "whiten":
    return "frozen" if leaf == "kernel" else "whiten_bias"
  if "bn" in module or "BatchNorm" in module:
    return "frozen" if leaf == "scale" else "norm_bias"
  return "weights"


def nesterov_recipe(c, total_steps: int) -> optax.GradientTransformation:
  """SGD with Nesterov momentum after airbench: peak rate `learning_rate` on the batch-mean
  loss (a triangle schedule), weight decay `weight_decay` added to the gradient (so scaled
  by the rate), batch-norm biases at `bias_lr_scale` times the rate with the same absolute
  decay, the whitening bias trained for the first `whiten_bias_fraction` of the steps."""
  total_steps = max(total_steps, 1)
  rate = triangle_schedule(c.learning_rate, total_steps)

  def sgd(schedule, decay):
    return optax.chain(optax.add_decayed_weights(decay),
                       optax.sgd(schedule, momentum=c.momentum, nesterov=True))

  whiten_until = c.whiten_bias_fraction * total_steps
  groups = {
      "weights": sgd(rate, c.weight_decay),
      "norm_bias": sgd(lambda t: c.bias_lr_scale * rate(t), c.weight_decay / c.bias_lr_scale),
      "whiten_bias": sgd(lambda t: jnp.where(t < whiten_until, rate(t), 0.0), c.weight_decay),
      "frozen": optax.set_to_zero(),
  }
  return optax.multi_transform(groups, lambda params: jax.tree_util.tree_map_with_path(_param_group, params))


def final_params(config, opt_state):
  """The weights a finished run keeps: the lookahead's slow weights, else the EMA."""
  if config.classifier.lookahead_period:
    return lookahead.slow_params(opt_state)
  return ema_params(opt_state)


def ema_params(opt_state):
  """The parameter EMA inside `make_optimizer`'s state (with classifier.ema_decay > 0 and no
  lookahead)."""
  return opt_state[-1].ema


def train_indices(config, labels) -> np.ndarray:
  """The indices into the train split this config trains on (`jaxinv.subsets`)."""
  return subsets.select(labels, config.max_train_examples, config.subset_selection,
                        config.subset_seed)


def load_split(config, split: str):
  images, labels = data.load(config.dataset, split, data_dir=config.data_dir or None)
  if split == "train" and config.max_train_examples:
    idx = train_indices(config, labels)
    images, labels = images[idx], labels[idx]
  if split == "test" and config.max_test_examples:
    images, labels = images[:config.max_test_examples], labels[:config.max_test_examples]
  return images, labels


def init_state(config, model, image_shape, tx, key, whiten_kernel=None):
  """A fresh state; `whiten_kernel` (airbench) replaces the first conv's random kernel."""
  variables = model.init(key, jnp.zeros((1, *image_shape), jnp.float32))
  if whiten_kernel is not None:
    params = dict(variables["params"])
    params["whiten"] = {**params["whiten"], "kernel": jnp.asarray(whiten_kernel)}
    variables = {**variables, "params": params}
  return steps.init_train_state(variables, tx)


# Images the whitening statistics are computed from (the recipe's 5000 would need ~0.5 GB of
# float64 patches on the host; 2000 give the same leading eigenvectors to within noise).
WHITENING_IMAGES = 2000


def whitening_kernel(config, train_x):
  """The airbench model's data-derived first-layer kernel, else None."""
  if config.classifier.model != "airbench":
    return None
  model = build_model(config, 1)
  width = model.whiten_width or classifiers.full_whiten_width(train_x.shape[-1])
  return classifiers.patch_whitening_kernel(train_x[:WHITENING_IMAGES], width)


def predict_fn(config, model):
  """`(variables, images) -> predicted labels`; with classifier.test_flips, from the summed
  logits of each image and its mirror; with classifier.test_translate = s, also of the image
  shifted by s pixels up-left and down-right (reflection-padded)."""

  shift = config.classifier.test_translate

  def views(variables, x):
    logits = model.apply(variables, x, train=False)[0]
    if config.classifier.test_flips:
      logits = logits + model.apply(variables, x[:, :, ::-1, :], train=False)[0]
    return logits

  def predict(variables, x):
    logits = views(variables, x)
    if shift:  # airbench's test-time shifts: half the weight on the two diagonal shifts
      pad = jnp.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="reflect")
      h, w = x.shape[1:3]
      up_left, down_right = pad[:, :h, :w], pad[:, 2 * shift:, 2 * shift:]
      logits = 0.5 * logits + 0.25 * (views(variables, up_left) + views(variables, down_right))
    return logits.argmax(-1)

  return predict


def fingerprint(config) -> dict:
  """What decides a classifier checkpoint's arrays (see `checkpoint.Checkpointer`)."""
  record = {"dataset": config.dataset, "model": config.classifier.model}
  if config.classifier.model == "mlp" and config.classifier.mlp_batch_norm:
    record["batch_norm"] = True  # only when set: older MLP checkpoints keep their fingerprint
  if config.classifier.widths:
    record["widths"] = list(config.classifier.widths)
  return record


def open_checkpoints(config, directory) -> checkpoint.Checkpointer:
  return checkpoint.Checkpointer(directory, kind="classifier", fingerprint=fingerprint(config),
                                 keep=config.checkpoint.keep)


def run(config, workdir) -> dict:
  config_lib.validate(config)
  config = config_lib.with_absolute_paths(config)
  work = Workdir(workdir)  # a missing filesystem package or an unwritable folder: an error now
  distributed.initialize(config.distributed)
  info = data.info(config.dataset)
  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_batch_size(config.classifier.batch_size, mesh, "classifier.batch_size")

  train_x, train_y = load_split(config, "train")
  test_x, test_y = load_split(config, "test")
  batch_size = config.classifier.batch_size
  steps_per_epoch = epoch_steps(len(train_x), batch_size)
  total_steps = config.classifier.steps or steps_per_epoch * config.classifier.epochs

  keys = rng.named_keys(config.seed, ["init", "dropout"])
  # Mixed precision: the model computes in config.compute_dtype, its parameters, the optimizer
  # state and the loss stay float32 (the classifiers return float32 logits).
  model = build_model(config, info.num_classes, config_lib.compute_dtype(config))
  tx = make_optimizer(config, total_steps)
  kernel = whitening_kernel(config, train_x)
  fresh = sharding.create_replicated(
      lambda key: init_state(config, model, info.image_shape, tx, key, kernel), mesh, keys["init"])
  ckpt = open_checkpoints(config, work.checkpoint_dir)
  work.start(config, resuming=ckpt.latest_step() is not None)
  if config.max_train_examples and distributed.is_primary():
    # The exact training images, for audits such as `jaxinv reconstruct`.
    labels = data.load(config.dataset, "train", data_dir=config.data_dir or None)[1]
    paths.save_npy(work.path / "train_indices.npy", train_indices(config, labels))
  # Resume order: this workdir's newest checkpoint, else config.init_from, else fresh.
  state, start_step = ckpt.restore_latest(fresh, fallback=config.checkpoint.fallback_to_intact)
  if state is not None:
    log.info("resuming from step %d in %s", start_step, ckpt.directory)
  else:
    state, start_step = fresh, 0
    if config.init_from:
      variables, source_step = restore_variables(config.init_from, fresh)
      state = state.replace(params=variables["params"], batch_stats=variables["batch_stats"])
      log.info("initialised from %s (step %d)", config.init_from, source_step)
  # Lines a killed run logged after its last checkpoint (or before its first) are
  # recomputed identically: drop them so each step appears once.
  work.truncate_metrics(start_step)
  replicated = sharding.replicated(mesh)
  augment = augmentation(config)
  c = config.classifier
  adversary = None
  if c.adversarial_epsilon:
    adversary = adversarial.make_adversary(
        steps.make_classifier_apply(model), epsilon=float(c.adversarial_epsilon),
        steps=int(c.adversarial_steps), step_size=float(c.adversarial_step_size) or None,
        norm=str(c.adversarial_norm))
  train_step = jax.jit(steps.make_classifier_step(model, tx,
                                                  label_smoothing=config.classifier.label_smoothing,
                                                  augment=augment, adversary=adversary),
                       donate_argnums=0, out_shardings=(replicated, replicated))

  def step_fn(state, step):
    epoch, index = divmod(step, steps_per_epoch)
    # Per-epoch permutation from (seed, epoch): the data order never needs saving.
    order = np.random.default_rng([config.seed, epoch]).permutation(len(train_x))
    idx = np.sort(order[index * batch_size:(index + 1) * batch_size])
    idx = idx[distributed.local_slice(batch_size)]  # this process's rows (all of them on one)
    batch = sharding.put_batch({"image": train_x[idx], "label": train_y[idx]}, mesh)
    state, step_metrics = train_step(state, batch, keys["dropout"])
    if (config.classifier.ema_decay or config.classifier.lookahead_period) and step + 1 == total_steps:
      # The last state (checkpointed, evaluated, inverted) holds the averaged weights.
      state = state.replace(params=final_params(config, state.opt_state))
    return state, {**step_metrics, "epoch": epoch}

  log.info("classifier %s on %s: steps %d to %d", config.classifier.model, config.dataset,
           start_step, total_steps)
  try:
    state = loop.train(
        state, step_fn, start_step=start_step, total_steps=total_steps,
        log_metrics=work.log_metrics, checkpointer=ckpt,
        save_every=config.checkpoint.every, log_every=config.classifier.log_every,
        desc=f"classifier[{config.dataset}]", postfix=("loss", "accuracy"),
        block_each_step=mesh.size > 1 and jax.default_backend() == "cpu")
  finally:
    ckpt.close()
    work.close()

  if not distributed.is_primary():  # process 0 evaluates and writes; the others are done
    return {"process_index": jax.process_index(), "steps": total_steps}
  # Host copies: evaluation runs on this process's devices only.
  variables = distributed.to_host({"params": state.params, "batch_stats": state.batch_stats})
  predict = jax.jit(predict_fn(config, model))
  test_pred = batched(lambda x: predict(variables, x), [test_x], EVAL_BATCH)
  per_class = plotting.class_grid(test_x, test_y, info.class_names,
                                  title=f"{config.dataset}: real test images")
  work.save_figure(per_class, "data_grid.png")
  summary = {
      "dataset": config.dataset,
      # Which copy was read (e.g. "CIFAR-10 (JPEG copy)": lossy pixels) and its classes.
      "data_source": data.source(config.dataset, data_dir=config.data_dir or None),
      "class_names": list(info.class_names),
      "model": config.classifier.model,
      "steps": total_steps,
      "test_accuracy": float(np.mean(test_pred == test_y)),
      "test_accuracy_per_class": metrics.accuracy_per_class(test_pred, test_y, info.num_classes),
      "train_examples": len(train_x),
      "test_examples": len(test_x),
      "wall_time_s": round(time.perf_counter() - work.start_time, 2),
      "devices": mesh.size,
  }
  work.write_summary(summary)
  work.close()
  return summary


def restore_variables(classifier_dir, target, step: int | None = None):
  """`({"params", "batch_stats"}, step)` of a classifier run: a partial restore of the
  checkpoint's `model` item only, into `target`'s structure and shardings."""
  classifier_dir = Path(classifier_dir)
  config = read_config(classifier_dir, "jaxinv train-classifier")
  with open_checkpoints(config, classifier_dir / "checkpoints") as ckpt:
    step = ckpt.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"No classifier checkpoint under {classifier_dir / 'checkpoints'}: "
                              "the classifier run has not saved yet.")
    variables = ckpt.restore_model({"params": target.params, "batch_stats": target.batch_stats}, step)
  return variables, step


def restore(classifier_dir, step: int | None = None):
  """Rebuilds a trained classifier from its run's workdir (its newest checkpoint, or `step`).

  Returns `(model, variables, classifier_config, step)`; `variables` holds
  `params` and `batch_stats`."""
  config = read_config(classifier_dir, "jaxinv train-classifier")
  info = data.info(config.dataset)
  model = build_model(config, info.num_classes)
  # Only the structure matters: tracing it is quick, running `init` op by op is not.
  target = checkpoint.restore_target(lambda key: init_state(config, model, info.image_shape,
                                                            make_optimizer(config, 1), key),
                                     jax.random.key(0))
  variables, step = restore_variables(classifier_dir, target, step)
  return model, variables, config, step


def restore_for(classifier_dir, info, role: str, fix: str):
  """`restore`, checked to classify `info`'s images and classes (a `data.info`); otherwise an
  error naming the `role` the classifier was to play (e.g. "The verifier in") and the `fix`."""
  model, variables, config, step = restore(classifier_dir)
  own = data.info(config.dataset)
  if (own.num_classes, own.image_shape) != (info.num_classes, info.image_shape):
    raise ValueError(f"{role} {classifier_dir} was trained on {config.dataset}, not on "
                     f"{info.name}'s images and classes; {fix}.")
  return model, variables, config, step
