"""Invert a trained classifier: train one conditioned generator, `run(config, workdir)`."""

import dataclasses
import functools
import logging
import time
from etils.epath import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxinv import (checkpoint, data, distributed, ensemble, metrics, plotting, priors, reconstruction,
                    rng, sampling, sharding, steps, transforms)
from jaxinv import classifier_ensemble
from jaxinv import config as config_lib
from jaxinv.models.generator import ConditionedGenerator
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import loop
from jaxinv.runs.workdir import Workdir, batched, read_config

EVAL_BATCH = 500
log = logging.getLogger(__name__)


def build_generator(config, info: data.DatasetInfo) -> ConditionedGenerator:
  g = config.generator
  return ConditionedGenerator(
      num_classes=info.num_classes, image_shape=tuple(info.image_shape), mode=g.mode,
      hot_pattern=g.hot_pattern, dropout_rate=g.dropout_rate, width=g.width,
      latent_dim=g.latent_dim, embed_dim=g.embed_dim, upsample=g.upsample,
      conv_impl=g.get("conv_impl", "auto"))


def init_generator_state(config, generator, tx, key) -> steps.TrainState:
  k = generator.num_classes
  z = jnp.zeros((2, generator.latent_dim))
  p = jnp.full((2, k), 1.0 / k)
  y = jnp.zeros((2,), jnp.int32)
  variables = generator.init({"params": key}, z, p, y, train=False)
  return steps.init_train_state(variables, tx)


def make_optimizer(config):
  # Cosine decay to zero: the last steps polish the rarest failures away.
  schedule = optax.cosine_decay_schedule(config.inversion.learning_rate, max(config.inversion.steps, 1))
  return optax.adam(schedule, eps=config.inversion.adam_eps)


def check_compatible(config, info, classifier_model, classifier_vars, classifier_config) -> None:
  """The classifier must take the generator's images and score the generator's classes."""
  source = data.info(classifier_config.dataset)
  if tuple(source.image_shape) != tuple(info.image_shape):
    raise ValueError(
        f"The classifier in {config.init_from} takes {source.image_shape} images "
        f"({classifier_config.dataset}) but the generator makes {info.image_shape} ({config.dataset}); "
        "set dataset to the classifier's dataset.")
  logits, aux = jax.eval_shape(
      lambda v: classifier_model.apply(v, jnp.zeros((1, *info.image_shape)), train=False),
      classifier_vars)
  if logits.shape[-1] != info.num_classes:
    raise ValueError(
        f"The classifier in {config.init_from} outputs {logits.shape[-1]} classes but the generator "
        f"is conditioned on {info.num_classes} ({config.dataset}); invert a classifier of this dataset.")
  if config.inversion.feature_layer not in aux:
    raise ValueError(f"inversion.feature_layer={config.inversion.feature_layer!r} is not among the "
                     f"classifier's features {sorted(aux)}.")


def evaluate(generator, generator_vars, classifier_model, classifier_vars, info, *, per_class: int,
             key, feature_layer: str, real_images=None, real_labels=None,
             dropout: bool = True) -> dict:
  """Target accuracy per class and within-class feature diversity of generated images."""
  labels = sampling.labels_for(per_class, range(info.num_classes))
  images = sampling.sample(generator, generator_vars, labels, key, batch_size=EVAL_BATCH,
                           dropout=dropout)

  @jax.jit
  def classify(variables, x):
    logits, aux = classifier_model.apply(variables, x, train=False)
    return logits.argmax(-1), aux[feature_layer]

  pred, feats = batched(lambda x: classify(classifier_vars, x), [images], EVAL_BATCH)
  result = {
      "target_accuracy_per_class": metrics.accuracy_per_class(pred, labels, info.num_classes),
      "generated_within_class_cosine": metrics.mean_within_class_cosine(feats, labels, info.num_classes),
  }
  result["target_accuracy"] = float(np.mean(pred == labels))
  result["target_accuracy_min_class"] = float(np.min(result["target_accuracy_per_class"]))
  if real_images is not None:
    _, real_feats = batched(lambda x: classify(classifier_vars, x), [real_images], EVAL_BATCH)
    result["real_within_class_cosine"] = metrics.mean_within_class_cosine(
        real_feats, real_labels, info.num_classes)
  return result, images, labels


def fingerprint(config) -> dict:
  """What decides a generator checkpoint's arrays and meaning."""
  g = config.generator
  record = {"dataset": config.dataset, "mode": g.mode, "hot_pattern": g.hot_pattern,
            "width": g.width, "latent_dim": g.latent_dim, "embed_dim": g.embed_dim,
            "upsample": g.upsample}
  member_list = ensemble.members(config)
  if member_list:
    record["members"] = [dataclasses.asdict(m) for m in member_list]
  return record


def open_checkpoints(config, directory) -> checkpoint.Checkpointer:
  kind = "generator_ensemble" if ensemble.members(config) else "generator"
  return checkpoint.Checkpointer(directory, kind=kind, fingerprint=fingerprint(config),
                                 keep=config.checkpoint.keep)


def inversion_terms(config) -> tuple[dict, dict]:
  """`(extra_terms, extra_weights)` for `steps.make_inversion_step`: every term the config
  gives a non-zero weight: image priors, reconstruction terms, the multi-classifier term."""
  terms, weights = priors.terms_from_config(config)
  more_terms, more_weights = reconstruction.terms_from_config(config)
  terms, weights = {**terms, **more_terms}, {**weights, **more_weights}
  terms, weights = _add_classifier_ensemble(config, terms, weights)
  return terms, weights


def _add_classifier_ensemble(config, terms: dict, weights: dict) -> tuple[dict, dict]:
  """The multi-classifier term: the classifiers in `classifier_ensemble.workdirs`, stacked."""
  weight = float(config.priors.classifier_ensemble)
  if not weight:
    return terms, weights
  restored = [classifier_run.restore(w) for w in config.classifier_ensemble.workdirs]
  model = restored[0][0]
  if any(r[0] != model for r in restored):
    raise ValueError("classifier_ensemble.workdirs must hold classifiers of one architecture (they "
                     "are stacked and vmapped); train the others with other seeds only.")
  stacked = classifier_ensemble.stack_variables([r[1] for r in restored])
  inv = config.inversion
  terms = {**terms, "classifier_ensemble": classifier_ensemble.make_term(
      model, stacked, alpha=inv.alpha, beta=inv.beta,
      impl=classifier_ensemble.resolve_impl(config.classifier_ensemble.impl))}
  return terms, {**weights, "classifier_ensemble": weight}


def initial_state_fn(config, generator, tx):
  """`keys -> TrainState`: one generator, or a stacked ensemble (one key per member)."""
  one = lambda key: init_generator_state(config, generator, tx, key)
  return jax.vmap(one) if ensemble.members(config) else one


def run(config, workdir) -> dict:
  """Trains one generator, or the ensemble `config.ensemble` describes, against the
  classifier run in `config.init_from`."""
  config_lib.validate(config)
  config = config_lib.with_absolute_paths(config)
  distributed.initialize(config)
  if not config.init_from:
    raise ValueError("Inversion needs a trained classifier: pass --config.init_from=CLASSIFIER_WORKDIR "
                     "(the workdir of a `jaxinv train-classifier` run).")
  info = data.info(config.dataset)
  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_batch_size(config.inversion.batch_size, mesh, "inversion.batch_size")
  work = Workdir(workdir)
  generator = build_generator(config, info)
  tx = make_optimizer(config)
  inv = config.inversion
  member_list = ensemble.members(config)
  extra_terms, extra_weights = inversion_terms(config)
  if member_list:  # every key, weight and rate gets a leading member axis
    keys = ensemble.member_keys(member_list)
    weights, dropout_rate = ensemble.hyperparameters(member_list, extra_weights)
  else:
    keys = rng.named_keys(config.seed, list(ensemble.MEMBER_KEYS))
    weights = steps.loss_weights(inv.alpha, inv.beta, inv.gamma, inv.delta, **extra_weights)
    dropout_rate = jnp.float32(config.generator.dropout_rate)
  fresh = sharding.create_replicated(initial_state_fn(config, generator, tx), mesh, keys["init"])
  ckpt = open_checkpoints(config, work.checkpoint_dir)
  work.start(config, resuming=ckpt.latest_step() is not None)
  # Resume order: this workdir's newest checkpoint, else a fresh generator.
  generator_state, start_step = ckpt.restore_latest(
      fresh, fallback=config.checkpoint.fallback_to_intact)
  classifier_step = None
  if generator_state is None:
    generator_state, start_step = fresh, 0
  else:
    log.info("resuming from step %d in %s", start_step, ckpt.directory)
    # Keep inverting the classifier checkpoint this run started with.
    classifier_step = ckpt.read_meta(start_step).get("classifier", {}).get("step")
  # Lines a killed run logged after its last checkpoint (or before its first) are
  # recomputed identically: drop them so each step appears once.
  work.truncate_metrics(start_step)
  classifier_model, classifier_vars, classifier_config, classifier_step = classifier_run.restore(
      config.init_from, classifier_step)
  check_compatible(config, info, classifier_model, classifier_vars, classifier_config)
  source = {"path": str(Path(config.init_from) / "checkpoints"), "step": int(classifier_step)}

  state = steps.InversionState(
      generator=generator_state,
      classifier=sharding.put_replicated(classifier_vars, mesh),
      loss_weights=sharding.put_replicated(weights, mesh),
      dropout_rate=sharding.put_replicated(dropout_rate, mesh))
  replicated = sharding.replicated(mesh)
  one_step = steps.make_inversion_train_step(
      steps.make_inversion_step(generator, classifier_model, tx, inv.feature_layer,
                                extra_terms=extra_terms,
                                input_transform=transforms.from_config(config)),
      batch_size=inv.batch_size, num_classes=info.num_classes,
      latent_dim=generator.latent_dim, mode=generator.mode,
      batch_sharding=sharding.data_sharded(mesh))
  train_step = jax.jit(ensemble.make_train_step(one_step, len(member_list), config.ensemble.impl)
                       if member_list else one_step,
                       donate_argnums=0, out_shardings=(replicated, replicated))
  step_keys = {"conditioning": keys["conditioning"], "dropout": keys["dropout"]}

  log.info("inverting %s (step %d) on %s: steps %d to %d%s", config.init_from, classifier_step,
           config.dataset, start_step, inv.steps,
           f", {len(member_list)} ensemble members" if member_list else "")
  try:
    state = loop.train(
        state, lambda state, step: train_step(state, step_keys), start_step=start_step,
        total_steps=inv.steps, work=work, checkpointer=ckpt, save_every=config.checkpoint.every,
        log_every=inv.log_every, desc=f"inversion[{config.dataset}]",
        postfix=("loss", "target_accuracy"), to_checkpoint=lambda s: s.generator,
        checkpoint_meta={"classifier": source},
        block_each_step=mesh.size > 1 and jax.default_backend() == "cpu")
  finally:
    ckpt.close()
    work.close()
  train_seconds = time.perf_counter() - work.start_time

  if not distributed.is_primary():  # process 0 evaluates and writes; the others are done
    return {"process_index": jax.process_index(), "steps": inv.steps}
  # Host copies: evaluation runs on this process's devices only.
  generator_vars = distributed.to_host(
      {"params": state.generator.params, "batch_stats": state.generator.batch_stats})
  # The state was donated step by step: read the classifier back from it.
  classifier_vars = distributed.to_host(state.classifier)
  real_x, real_y = data.load(config.dataset, "test", data_dir=config.data_dir or None)
  evaluate_one = functools.partial(
      evaluate, classifier_model=classifier_model, classifier_vars=classifier_vars, info=info,
      per_class=inv.eval_samples_per_class, key=keys["eval"], feature_layer=inv.feature_layer,
      real_images=real_x, real_labels=real_y, dropout=config.generator.dropout_at_sampling)
  summary = {
      "dataset": config.dataset,
      "classifier": {"workdir": config.init_from, **source},
      "steps": inv.steps,
  }
  title = f"{config.dataset}: generated, one row per requested class"
  if member_list:
    summary["members"] = []
    for i, member in enumerate(member_list):
      evaluation, images, labels = evaluate_one(
          generator.clone(dropout_rate=member.dropout_rate), ensemble.unstack(generator_vars, i),
          key=keys["eval"][i])
      summary["members"].append({**dataclasses.asdict(member), **evaluation})
      work.save_figure(plotting.class_grid(images, labels, info.class_names,
                                           title=f"{title} (member {i})"),
                       f"samples_grid_member{i}.png")
  else:
    evaluation, images, labels = evaluate_one(generator, generator_vars)
    summary.update(evaluation)
    work.save_figure(plotting.class_grid(images, labels, info.class_names, title=title),
                     "samples_grid.png")
  summary.update({
      "train_wall_time_s": round(train_seconds, 2),
      "wall_time_s": round(time.perf_counter() - work.start_time, 2),
      "devices": mesh.size,
  })
  work.write_summary(summary)
  work.close()
  return summary


def restore(inversion_dir):
  """Rebuilds a trained generator from its run's workdir: `(generator, variables, config)`.

  For an ensemble run every leaf of `variables` has a leading member axis; see
  `restore_generators` for a uniform view of both kinds."""
  inversion_dir = Path(inversion_dir)
  config = read_config(inversion_dir, "jaxinv invert")
  generator = build_generator(config, data.info(config.dataset))
  tx = make_optimizer(config)
  member_list = ensemble.members(config)
  keys = jnp.stack([jax.random.key(0)] * len(member_list)) if member_list else jax.random.key(0)
  target = checkpoint.restore_target(initial_state_fn(config, generator, tx), keys)
  with open_checkpoints(config, inversion_dir / "checkpoints") as ckpt:
    state = ckpt.restore(target)
  return generator, {"params": state.params, "batch_stats": state.batch_stats}, config


def restore_generators(inversion_dir):
  """`(generator, stacked variables [G, …], dropout rates [G], config)`: G = 1 for a
  single run, the member count for an ensemble."""
  generator, variables, config = restore(inversion_dir)
  member_list = ensemble.members(config)
  if member_list:
    return generator, variables, np.array([m.dropout_rate for m in member_list], np.float32), config
  stacked = jax.tree.map(lambda x: np.asarray(x)[None], variables)
  return generator, stacked, np.array([generator.dropout_rate], np.float32), config
