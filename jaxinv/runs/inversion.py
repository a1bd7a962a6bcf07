"""Invert a trained classifier: train one conditioned generator, `run(config, workdir)`."""

import dataclasses
import functools
import logging
import time
from etils.epath import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv import (checkpoint, data, distributed, ensemble, loop, metrics, plotting, rng, sampling,
                    sharding, steps)
from jaxinv import config as config_lib
from jaxinv.classifier import FEATURES, Classifier
from jaxinv.inversion import (Inversion, default_optimizer, ensemble_keys, generator_variables,
                              make_inversion)
from jaxinv.models.generator import ConditionedGenerator
from jaxinv.runs import options
from jaxinv.runs import target as target_lib
from jaxinv.runs.workdir import Workdir, batched, read_config

EVAL_BATCH = 500
log = logging.getLogger(__name__)


def build_generator(config, info: data.DatasetInfo) -> ConditionedGenerator:
  g = config.generator
  return ConditionedGenerator(
      num_classes=info.num_classes, image_shape=tuple(info.image_shape), mode=g.mode,
      hot_pattern=g.hot_pattern, temperature=float(g.temperature), dropout_rate=g.dropout_rate,
      width=g.width, latent_dim=g.latent_dim, embed_dim=g.embed_dim, upsample=g.upsample,
      blur=float(g.blur), conv_impl=g.get("conv_impl", "auto"), dtype=config_lib.compute_dtype(config))


def init_generator_state(config, generator, tx, key) -> steps.TrainState:
  k = generator.num_classes
  z = jnp.zeros((2, generator.latent_dim))
  p = jnp.full((2, k), 1.0 / k)
  y = jnp.zeros((2,), jnp.int32)
  variables = generator.init({"params": key}, z, p, y, train=False)
  return steps.init_train_state(variables, tx)


def make_optimizer(config):
  inv = config.inversion
  return default_optimizer(inv.learning_rate, inv.steps, inv.adam_eps)


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


def evaluate(generator, generator_vars, classifier, classifier_vars, info, *, per_class: int,
             key, real_images=None, real_labels=None, dropout: bool = True) -> dict:
  """Target accuracy per class and within-class feature diversity of generated images;
  `classifier` is a `jaxinv.Classifier` (its params are `classifier_vars`)."""
  labels = sampling.labels_for(per_class, range(info.num_classes))
  images = sampling.sample(generator, generator_vars, labels, key, batch_size=EVAL_BATCH,
                           dropout=dropout)

  @jax.jit
  def classify(variables, x):
    logits, aux = classifier.apply_fn(variables, x)
    return logits.argmax(-1), aux[FEATURES]

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
  member_list = options.members(config)
  if member_list:
    record["members"] = [dataclasses.asdict(m) for m in member_list]
  return record


def open_checkpoints(config, directory) -> checkpoint.Checkpointer:
  kind = "generator_ensemble" if options.members(config) else "generator"
  return checkpoint.Checkpointer(directory, kind=kind, fingerprint=fingerprint(config),
                                 keep=config.checkpoint.keep)


def initial_state_fn(config, generator, tx):
  """`keys -> TrainState`: one generator, or a stacked ensemble (one key per member)."""
  one = lambda key: init_generator_state(config, generator, tx, key)
  return jax.vmap(one) if options.members(config) else one


def build_inversion(config, info, classifier: Classifier, mesh) -> Inversion:
  """The `jaxinv.make_inversion` that `config` describes."""
  inv = config.inversion
  return make_inversion(
      classifier, info.image_shape, num_classes=info.num_classes, generator=build_generator(config, info),
      batch_size=inv.batch_size, optimizer=make_optimizer(config),
      alpha=inv.alpha, beta=inv.beta, gamma=inv.gamma, delta=inv.delta,
      kl_temperature=inv.kl_temperature, terms=options.inversion_terms(config),
      input_transform=options.input_transform(config),
      members=options.members(config), ensemble_impl=config.ensemble.impl, mesh=mesh)


def run(config, workdir) -> dict:
  """Trains one generator, or the ensemble `config.ensemble` describes, against the
  classifier run in `config.init_from`, through `jaxinv.make_inversion`."""
  config_lib.validate(config)
  config = config_lib.with_absolute_paths(config)
  distributed.initialize(config.distributed)
  if not config.init_from and not config.classifier_fn:
    raise ValueError("Inversion needs a trained classifier: pass --config.init_from=CLASSIFIER_WORKDIR "
                     "(the workdir of a `jaxinv train-classifier` run) or "
                     "--config.classifier_fn=package.module:factory (your own classifier).")
  info = data.info(config.dataset)
  mesh = sharding.make_mesh(config.num_devices)
  sharding.check_batch_size(config.inversion.batch_size, mesh, "inversion.batch_size")
  work = Workdir(workdir)
  inv = config.inversion
  member_list = options.members(config)
  # The same keys a seed gives every run: member i of an ensemble uses its own seed's.
  key = ensemble_keys(member_list) if member_list else jax.random.key(config.seed)
  eval_keys = (jnp.stack([rng.named_keys(m.seed, ["eval"])["eval"] for m in member_list])
               if member_list else rng.named_keys(config.seed, ["eval"])["eval"])
  ckpt = open_checkpoints(config, work.checkpoint_dir)
  work.start(config, resuming=ckpt.latest_step() is not None)
  target = target_lib.load(config)
  if target.config is not None:
    check_compatible(config, info, target.model, target.classifier.params, target.config)
  inversion = build_inversion(config, info, target.classifier, mesh)
  fresh = inversion.jit_init()(key)
  # Resume order: this workdir's newest checkpoint, else a fresh generator.
  generator_state, start_step = ckpt.restore_latest(
      fresh.generator, fallback=config.checkpoint.fallback_to_intact)
  if generator_state is None:
    state, start_step = fresh, 0
  else:
    log.info("resuming from step %d in %s", start_step, ckpt.directory)
    state = fresh.replace(generator=generator_state)
    # Keep inverting the classifier checkpoint this run started with.
    started_with = ckpt.read_meta(start_step).get("classifier", {}).get("step")
    if started_with is not None and int(started_with) != target.record["step"]:
      target = target_lib.load(config, int(started_with))
      state = state.replace(classifier=sharding.put_replicated(target.classifier.params, mesh))
  # Lines a killed run logged after its last checkpoint (or before its first) are
  # recomputed identically: drop them so each step appears once.
  work.truncate_metrics(start_step)
  source = target.record
  train_step = inversion.jit_step()

  log.info("inverting %s on %s: steps %d to %d%s", source, config.dataset, start_step, inv.steps,
           f", {len(member_list)} ensemble members" if member_list else "")
  try:
    state = loop.train(
        state, lambda state, step: train_step(state, key), start_step=start_step,
        total_steps=inv.steps, log_metrics=work.log_metrics, checkpointer=ckpt,
        save_every=config.checkpoint.every, log_every=inv.log_every,
        desc=f"inversion[{config.dataset}]", postfix=("loss", "target_accuracy"),
        to_checkpoint=lambda s: s.generator, checkpoint_meta={"classifier": source},
        block_each_step=mesh.size > 1 and jax.default_backend() == "cpu")
  finally:
    ckpt.close()
    work.close()
  train_seconds = time.perf_counter() - work.start_time

  if not distributed.is_primary():  # process 0 evaluates and writes; the others are done
    return {"process_index": jax.process_index(), "steps": inv.steps}
  generator = inversion.generator
  # Host copies: evaluation runs on this process's devices only.
  generator_vars = distributed.to_host(generator_variables(state))
  # The state was donated step by step: read the classifier back from it.
  classifier_vars = distributed.to_host(state.classifier)
  real_x, real_y = data.load(config.dataset, "test", data_dir=config.data_dir or None)
  evaluate_one = functools.partial(
      evaluate, classifier=target.classifier, classifier_vars=classifier_vars, info=info,
      per_class=inv.eval_samples_per_class, key=eval_keys, real_images=real_x, real_labels=real_y, dropout=config.generator.dropout_at_sampling)
  summary = {
      "dataset": config.dataset,
      "classifier": {"workdir": config.init_from, **source} if config.init_from else source,
      "steps": inv.steps,
  }
  title = f"{config.dataset}: generated, one row per requested class"
  if member_list:
    summary["members"] = []
    for i, member in enumerate(member_list):
      evaluation, images, labels = evaluate_one(
          generator.clone(dropout_rate=member.dropout_rate), ensemble.unstack(generator_vars, i),
          key=eval_keys[i])
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
  member_list = options.members(config)
  keys = jnp.stack([jax.random.key(0)] * len(member_list)) if member_list else jax.random.key(0)
  target = checkpoint.restore_target(initial_state_fn(config, generator, tx), keys)
  with open_checkpoints(config, inversion_dir / "checkpoints") as ckpt:
    state = ckpt.restore(target)
  return generator, {"params": state.params, "batch_stats": state.batch_stats}, config


def restore_generators(inversion_dir):
  """`(generator, stacked variables [G, …], dropout rates [G], config)`: G = 1 for a
  single run, the member count for an ensemble."""
  generator, variables, config = restore(inversion_dir)
  member_list = options.members(config)
  if member_list:
    return generator, variables, np.array([m.dropout_rate for m in member_list], np.float32), config
  stacked = jax.tree.map(lambda x: np.asarray(x)[None], variables)
  return generator, stacked, np.array([generator.dropout_rate], np.float32), config
