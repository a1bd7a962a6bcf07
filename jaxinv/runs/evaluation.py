"""Evaluate a finished (or checkpointed) inversion run: `run(inversion_dir, verifier_dir)`.

Writes into `INV_DIR/eval/` (or `out_dir`): `metrics.json`, the figures as PNG,
`report.html` (self-contained: figures embedded) and TensorBoard event files
under `tensorboard/` (the training curves from `metrics.jsonl`, the evaluation
scalars and the figures), browsable with `tensorboard --logdir INV_DIR/eval/tensorboard`.
"""

import io
import json
import logging
import time
from typing import NamedTuple

import jax
import numpy as np
from etils.epath import Path

from jaxinv import acceptance, data, metrics, paths, plotting, probes, report, sampling
from jaxinv.runs import classifier as classifier_run
from jaxinv.classifier import FEATURES
from jaxinv.runs import draw, inversion, pixel_inversion
from jaxinv.runs import target as target_lib
from jaxinv.runs.workdir import batched

EVAL_BATCH = 500
KNN_K = 3  # Kynkäänniemi et al.'s choice
log = logging.getLogger(__name__)


def classify_fn(model, layer: str):
  """`(variables, x) -> (predicted class, features of `layer`)`, compiled once per model."""
  @jax.jit
  def classify(variables, x):
    logits, aux = model.apply(variables, x, train=False)
    return logits.argmax(-1), aux[layer]
  return classify


def classify_target(target: target_lib.Target):
  """`((variables, x) -> (predicted class, features), variables)` of the inverted classifier."""
  apply_fn = target.classifier.apply_fn

  @jax.jit
  def classify(variables, x):
    logits, aux = apply_fn(variables, x)
    return logits.argmax(-1), aux[FEATURES]
  return classify, target.classifier.params


def _target_record(config, target: target_lib.Target) -> dict:
  record = {"model": target.architecture, **target.record}
  if config.init_from:
    record["workdir"] = paths.absolute(config.init_from)
  return record


def first_per_class(labels, num_classes: int, count: int) -> np.ndarray:
  """Indices of the first `count` examples of each class (fewer where a class has fewer)."""
  labels = np.asarray(labels)
  return np.concatenate([np.flatnonzero(labels == k)[:count] for k in range(num_classes)])


def _summary(run_dir) -> dict:
  path = Path(run_dir) / "summary.json"
  return json.loads(path.read_text()) if path.is_file() else {}


def load_verifier(verifier_dir, target_architecture: str, info):
  """The verifier classifier, checked to be of another architecture on the same images."""
  model, variables, config, step = classifier_run.restore_for(
      verifier_dir, info, "The verifier in",
      f"train one with `jaxinv train-classifier --config configs/verifier.py:{info.name}`")
  if config.classifier.model == target_architecture:
    raise ValueError(f"The verifier in {verifier_dir} is a {config.classifier.model!r} like the "
                     "inverted classifier; a verifier must be of another architecture (it should not "
                     "share the target's blind spots). Train one with "
                     f"`jaxinv train-classifier --config configs/verifier.py:{info.name}`.")
  return model, variables, config, step


def compute_metrics(*, gen_images, gen_labels, num_classes, target, verifier, real_images, real_labels,
                    train_images, closeness_per_class: int, max_per_class: int = 500) -> tuple[dict, dict]:
  """All numbers of one evaluation. `target` / `verifier` are `(classify, variables)`
  pairs (verifier may be None). Returns `(scalars and per-class lists, arrays for the figures)`."""
  out, arrays = {}, {}
  t_pred, t_feat = batched(lambda x: target[0](target[1], x), [gen_images], EVAL_BATCH)
  _, t_real = batched(lambda x: target[0](target[1], x), [real_images], EVAL_BATCH)
  arrays.update(target_features=t_feat, target_real_features=t_real)
  out["target_accuracy_per_class"] = metrics.accuracy_per_class(t_pred, gen_labels, num_classes)
  out["target_accuracy"] = float(np.mean(t_pred == gen_labels))
  out["target_accuracy_min_class"] = float(np.nanmin(out["target_accuracy_per_class"]))
  out["target_confusion"] = metrics.confusion(t_pred, gen_labels, num_classes)
  out["generated_within_class_cosine_per_class"] = metrics.within_class_cosine_per_class(
      t_feat, gen_labels, num_classes, max_per_class)
  out["real_within_class_cosine_per_class"] = metrics.within_class_cosine_per_class(
      t_real, real_labels, num_classes, max_per_class)
  out["generated_within_class_cosine"] = float(np.nanmean(out["generated_within_class_cosine_per_class"]))
  out["real_within_class_cosine"] = float(np.nanmean(out["real_within_class_cosine_per_class"]))
  out["generated_gram_deviation"] = metrics.mean_gram_deviation(t_feat, gen_labels, num_classes, max_per_class)
  out["real_gram_deviation"] = metrics.mean_gram_deviation(t_real, real_labels, num_classes, max_per_class)
  space_gen, space_real, out["knn_feature_space"] = t_feat, t_real, "target"
  if verifier is not None:
    v_pred, v_feat = batched(lambda x: verifier[0](verifier[1], x), [gen_images], EVAL_BATCH)
    _, v_real = batched(lambda x: verifier[0](verifier[1], x), [real_images], EVAL_BATCH)
    out["verifier_accuracy_per_class"] = metrics.accuracy_per_class(v_pred, gen_labels, num_classes)
    out["verifier_accuracy"] = float(np.mean(v_pred == gen_labels))
    out["verifier_accuracy_min_class"] = float(np.nanmin(out["verifier_accuracy_per_class"]))
    out["verifier_confusion"] = metrics.confusion(v_pred, gen_labels, num_classes)
    out["verifier_generated_within_class_cosine"] = metrics.mean_within_class_cosine(
        v_feat, gen_labels, num_classes, max_per_class)
    out["verifier_real_within_class_cosine"] = metrics.mean_within_class_cosine(
        v_real, real_labels, num_classes, max_per_class)
    space_gen, space_real, out["knn_feature_space"] = v_feat, v_real, "verifier"
  # Equal set sizes, as in Kynkäänniemi et al.: the ball radii depend on the density.
  per_class = int(np.max(np.bincount(np.asarray(gen_labels), minlength=num_classes)))
  balanced = first_per_class(real_labels, num_classes, per_class)
  pr = metrics.knn_precision_recall(space_real[balanced], space_gen, k=KNN_K)
  out.update(knn_k=KNN_K, knn_precision=pr["precision"], knn_recall=pr["recall"])

  chosen = first_per_class(gen_labels, num_classes, closeness_per_class)
  close = metrics.closeness_to_data(gen_images[chosen], train_images)
  real_chosen = first_per_class(real_labels, num_classes, closeness_per_class)
  real_close = metrics.closeness_to_data(real_images[real_chosen], train_images)
  out["generated_nn_distance"] = float(np.mean(close["nn_distance"]))
  out["generated_nn_ssim"] = float(np.mean(close["ssim"]))
  out["generated_nn_ssim_max"] = float(np.max(close["ssim"]))
  out["real_nn_distance"] = float(np.mean(real_close["nn_distance"]))
  out["real_nn_ssim"] = float(np.mean(real_close["ssim"]))
  labels_chosen = np.asarray(gen_labels)[chosen]
  out["generated_nn_distance_per_class"] = [
      float(np.mean(close["nn_distance"][labels_chosen == k])) if np.any(labels_chosen == k)
      else float("nan") for k in range(num_classes)]
  out["generated_nn_ssim_per_class"] = [
      float(np.mean(close["ssim"][labels_chosen == k])) if np.any(labels_chosen == k)
      else float("nan") for k in range(num_classes)]
  arrays.update(closeness=close, closeness_images=gen_images[chosen], closeness_labels=labels_chosen)
  return out, arrays


def _png(figure) -> bytes:
  import matplotlib.pyplot as plt
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=90)
  plt.close(figure)
  return buffer.getvalue()


def make_figures(*, generator, variables, dropout, info, arrays, gen_labels, real_labels, records,
                 key, plot_per_class: int = 100) -> list[tuple[str, str, bytes]]:
  """`(file name, caption, png)` for every figure of an evaluation."""
  k, names = info.num_classes, info.class_names
  figures = []
  grid = probes.fixed_latent_batch(key, k, 8, generator.latent_dim, generator.mode,
                                   generator.temperature)
  images = probes.generate(generator, variables, grid, key, dropout=dropout)
  figures.append(("samples_fixed_latents.png",
                  "Generated images: one row per class, one latent z per column (shared by all rows).",
                  _png(plotting.fixed_latent_grid(images.reshape(k, 8, *images.shape[1:]), names))))
  pairs = [(a, (a + 1) % k) for a in range(min(k, 5))]
  steps = 9
  strip = probes.interpolation_batch(jax.random.fold_in(key, 1), pairs, steps, k,
                                     generator.latent_dim, generator.mode, generator.temperature)
  images = probes.generate(generator, variables, strip, key, dropout=dropout)
  figures.append(("interpolation.png",
                  f"Interpolation between two classes' conditioning vectors with a fixed z "
                  f"(mode {generator.mode}; the label / hot matrix follow argmax p).",
                  _png(plotting.interpolation_strip(
                      images.reshape(len(pairs), steps, *images.shape[1:]),
                      np.asarray(strip["t"][:steps]), [f"{names[a]}→{names[b]}" for a, b in pairs]))))
  g = first_per_class(gen_labels, k, plot_per_class)
  r = first_per_class(real_labels, k, plot_per_class)
  feats, labs = arrays["target_features"][g], np.asarray(gen_labels)[g]
  real_feats, real_labs = arrays["target_real_features"][r], np.asarray(real_labels)[r]
  figures.append(("pca.png", "PCA of the inverted classifier's features: generated (fit) and real "
                  "test images projected on the same axes.",
                  _png(plotting.pca_figure(feats, labs, names, real_feats, real_labs))))
  figures.append(("decision_boundary.png",
                  "Class regions (nearest class mean) in the PCA plane of generated features.",
                  _png(plotting.decision_boundary_figure(feats, labs, names, real_feats, real_labs))))
  figures.append(("tsne.png", "t-SNE of the inverted classifier's features (one joint embedding of "
                  "generated and real images).",
                  _png(plotting.tsne_figure(feats, labs, names, real_feats, real_labs))))
  close = arrays["closeness"]
  first = first_per_class(arrays["closeness_labels"], k, 1)
  figures.append(("nearest_training.png",
                  "Closeness to data: one generated image per class above the training image with the "
                  "highest SSIM among its 8 nearest in pixel distance (SSIM printed).",
                  _png(plotting.nearest_pairs_figure(
                      arrays["closeness_images"][first], arrays["train_images"][close["ssim_index"][first]],
                      close["ssim"][first], [names[c] for c in arrays["closeness_labels"][first]]))))
  if records:
    figures.append(("loss_curves.png", "Training curves from metrics.jsonl.",
                    _png(plotting.loss_curves(records))))
  return figures


def read_records(run_dir) -> list[dict]:
  path = Path(run_dir) / "metrics.jsonl"
  if not path.is_file():
    return []
  records = []
  for line in path.read_text().splitlines():
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      continue  # a line cut by a kill
  return records


def write_tensorboard(logdir: Path, records, scalars: dict, figures, step: int) -> None:
  """Training curves, evaluation scalars and figures as TensorBoard events (tensorboardX)."""
  import matplotlib.pyplot as plt
  from tensorboardX import SummaryWriter
  logdir.mkdir(parents=True, exist_ok=True)
  for old in logdir.glob("events.out.tfevents.*"):  # a re-evaluation replaces, not duplicates
    old.unlink()
  with SummaryWriter(str(logdir)) as writer:
    for record in records:
      for name, value in record.items():
        if name not in ("step", "time_s"):
          writer.add_scalar(f"train/{name}", value, record["step"])
    for name, value in scalars.items():
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        writer.add_scalar(f"eval/{name}", value, step)
    for name, _, png in figures:
      writer.add_image(f"eval/{Path(name).stem}", plt.imread(io.BytesIO(png))[..., :3], step,
                       dataformats="HWC")


def report_html(result: dict, class_names, figures) -> str:
  scalar_rows = [(name, value) for name, value in result.items()
                 if isinstance(value, (int, float, str)) and not isinstance(value, bool)]
  per_class_keys = [k for k in ("target_accuracy_per_class", "verifier_accuracy_per_class",
                                "generated_within_class_cosine_per_class",
                                "real_within_class_cosine_per_class",
                                "generated_nn_distance_per_class", "generated_nn_ssim_per_class")
                    if k in result]
  per_class_rows = [[name] + [result[k][i] for k in per_class_keys] for i, name in enumerate(class_names)]
  notes = [
      "Target: the inverted classifier. Verifier: an independently trained classifier of another "
      "architecture; a high target but low verifier accuracy means adversarial patterns.",
      "Within-class cosine: mean pairwise cosine of features inside a class (lower = more diverse); "
      "Gram deviation: mean (F̂F̂ᵀ − I)² per class. k-NN precision / recall (Kynkäänniemi et al. "
      "2019, k = 3) in the verifier's feature space when there is one: precision = generated images "
      "inside the real-data manifold, recall = real images covered by the generated manifold.",
      "Closeness: Euclidean pixel distance to the nearest training image and the best SSIM (dm-pix) "
      "among its 8 pixel-nearest training images; 'real' rows are test images, for reference.",
  ]
  sections = [("Metrics", ("metric", "value"), scalar_rows),
              ("Per class", ["class"] + [k.replace("_per_class", "") for k in per_class_keys],
               per_class_rows)]
  for who in ("verifier", "target"):
    if f"{who}_confusion" in result:  # rows: the requested label; columns: what it was called
      sections.append((f"What the {who} calls each requested class (images)",
                       ["requested ↓ / called →"] + list(class_names),
                       [[name] + list(counts)
                        for name, counts in zip(class_names, result[f"{who}_confusion"])]))
  return report.render(f"jaxinv evaluation: {result['inversion_dir']}", sections,
                       [(caption, png) for _, caption, png in figures], notes)


def run(inversion_dir, verifier_dir=None, *, out_dir=None, num_per_class: int = 500, seed: int = 0,
        member: int = 0, figures: bool = True, tensorboard: bool = True,
        closeness_per_class: int = 50, data_dir=None, accept_threshold: float | None = None,
        accept_by=None) -> dict:
  """Evaluates generator `member` of the run in `inversion_dir` against its classifier and,
  if given, a verifier classifier. Returns (and writes) the metrics.

  With an acceptance threshold above 0 (`accept_threshold`, default: the run's
  `generator.accept_threshold`) the generated images are drawn by rejection
  (`jaxinv.acceptance`): only those every classifier run in `accept_by` (default: the run's
  `classifier_ensemble.workdirs`) gives its label with probability ≥ the threshold count."""
  start = time.perf_counter()
  inversion_dir = Path(inversion_dir)
  _check(inversion_dir, num_per_class, accept_threshold, accept_by)
  if pixel_inversion.is_pixel_run(inversion_dir):
    return run_images(inversion_dir, verifier_dir, out_dir=out_dir, num_per_class=num_per_class,
                      seed=seed, closeness_per_class=closeness_per_class, data_dir=data_dir)
  setup = _load(inversion_dir, verifier_dir, member, data_dir, accept_threshold, accept_by)
  out_dir = Path(out_dir) if out_dir is not None else inversion_dir / "eval"
  return _evaluate(setup, seed, out_dir, start, num_per_class=num_per_class, figures=figures,
                   tensorboard=tensorboard, closeness_per_class=closeness_per_class)


def _check(inversion_dir, num_per_class: int, accept_threshold, accept_by) -> None:
  """Bad arguments, named before anything is loaded or compiled."""
  if num_per_class < 2:
    raise ValueError(f"--num-per-class must be at least 2 (pairwise diversity), got {num_per_class}.")
  if accept_threshold is not None:
    acceptance.check_threshold(accept_threshold)
  if pixel_inversion.is_pixel_run(inversion_dir) and (accept_threshold or accept_by):
    raise ValueError(f"{inversion_dir} is a pixel-inversion run: its images are fixed, there is "
                     "nothing to draw again; evaluate it without --accept-threshold.")


class _Setup(NamedTuple):
  """What every evaluation seed of one run shares: loaded (and its classifiers compiled) once."""
  inversion_dir: Path
  generator: object
  variables: object
  config: object
  member: int
  info: object
  summary: dict
  inverted: target_lib.Target
  target: tuple
  verifier: tuple | None
  verifier_record: dict | None
  real_images: np.ndarray
  real_labels: np.ndarray
  train_images: np.ndarray
  accept: object


def _load(inversion_dir: Path, verifier_dir, member: int, data_dir, accept_threshold, accept_by):
  generator, stacked, rates, config = inversion.restore_generators(inversion_dir)
  if not 0 <= member < len(rates):
    raise ValueError(f"--member {member} is out of range: {inversion_dir} holds {len(rates)} generator(s).")
  variables = jax.tree.map(lambda x: np.asarray(x)[member], stacked)
  generator = generator.clone(dropout_rate=float(rates[member]))
  info = data.info(config.dataset)
  summary = _summary(inversion_dir)
  classifier_step = summary.get("classifier", {}).get("step")
  inverted = target_lib.load(config, classifier_step)
  verifier, verifier_record = _verifier(verifier_dir, inverted.architecture, info)
  data_dir = data_dir or config.data_dir or None
  real_images, real_labels = data.load(config.dataset, "test", data_dir=data_dir)
  train_images, _ = data.load(config.dataset, "train", data_dir=data_dir)
  accept = draw.acceptor(config, draw.threshold(config, accept_threshold), accept_by,
                         verifier_dir, batch_size=EVAL_BATCH)
  return _Setup(inversion_dir, generator, variables, config, member, info, summary, inverted,
                classify_target(inverted), verifier, verifier_record, real_images, real_labels,
                train_images, accept)


def _evaluate(setup: _Setup, seed: int, out_dir: Path, start: float, *, num_per_class: int,
              figures: bool, tensorboard: bool, closeness_per_class: int) -> dict:
  """One seed's draw, its metrics, figures and report, written to `out_dir`."""
  config, info, summary = setup.config, setup.info, setup.summary
  dropout = config.generator.dropout_at_sampling
  key = jax.random.key(seed)
  gen_labels = sampling.labels_for(num_per_class, range(info.num_classes))
  gen_images, accepted = draw.images(setup.generator, setup.variables, gen_labels, key, config,
                                     setup.accept, batch_size=EVAL_BATCH)
  scalars, arrays = compute_metrics(
      gen_images=gen_images, gen_labels=gen_labels, num_classes=info.num_classes,
      target=setup.target, verifier=setup.verifier, real_images=setup.real_images,
      real_labels=setup.real_labels, train_images=setup.train_images,
      closeness_per_class=closeness_per_class)
  result = {
      "inversion_dir": paths.absolute(setup.inversion_dir), "dataset": config.dataset,
      "mode": config.generator.mode, "gamma": config.inversion.gamma, "delta": config.inversion.delta,
      "generator_steps": summary.get("steps"), "member": setup.member,
      "target_classifier": _target_record(config, setup.inverted),
      "verifier": setup.verifier_record, "num_per_class": num_per_class, "seed": seed,
      "closeness_per_class": closeness_per_class, "dropout_at_sampling": dropout, **accepted,
      **scalars,
  }
  out_dir.mkdir(parents=True, exist_ok=True)
  made = []
  if figures:
    arrays["train_images"] = setup.train_images
    made = make_figures(generator=setup.generator, variables=setup.variables, dropout=dropout,
                        info=info, arrays=arrays, gen_labels=gen_labels,
                        real_labels=setup.real_labels, records=read_records(setup.inversion_dir),
                        key=jax.random.fold_in(key, 7))
    for name, _, png in made:
      (out_dir / name).write_bytes(png)
  result["wall_time_s"] = round(time.perf_counter() - start, 2)
  (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
  (out_dir / "report.html").write_text(report_html(result, info.class_names, made))
  if tensorboard:
    write_tensorboard(out_dir / "tensorboard", read_records(setup.inversion_dir), scalars, made,
                      int(summary.get("steps") or 0))
  log.info("evaluation written to %s", out_dir)
  return result


def run_seeds(inversion_dir, verifier_dir=None, *, seeds, out_dir=None, num_per_class: int = 500,
              member: int = 0, figures: bool = True, tensorboard: bool = True,
              closeness_per_class: int = 50, data_dir=None, accept_threshold: float | None = None,
              accept_by=None) -> dict:
  """`run` once per evaluation seed, each into `OUT/seed_S/`, and `OUT/metrics.json` with the
  mean over the seeds of every number `run` reports (`mean_over_seeds`); the run, its
  classifiers and the data are loaded once. One seed's draw moves a weakest-class accuracy or a
  k-NN recall by points; the mean over a few seeds is the figure to compare settings by.
  Returns the mean."""
  start = time.perf_counter()
  inversion_dir = Path(inversion_dir)
  seeds = [int(s) for s in seeds]
  repeated = sorted({s for s in seeds if seeds.count(s) > 1})
  if not seeds or repeated:
    raise ValueError(f"--seed needs distinct seeds (got {seeds}); "
                     "give each evaluation seed once, e.g. --seed 1 2 3.")
  _check(inversion_dir, num_per_class, accept_threshold, accept_by)
  out_dir = Path(out_dir) if out_dir is not None else inversion_dir / "eval"
  if pixel_inversion.is_pixel_run(inversion_dir):
    results = [run_images(inversion_dir, verifier_dir, out_dir=out_dir / f"seed_{s}",
                          num_per_class=num_per_class, seed=s,
                          closeness_per_class=closeness_per_class, data_dir=data_dir)
               for s in seeds]
  else:
    setup = _load(inversion_dir, verifier_dir, member, data_dir, accept_threshold, accept_by)
    results = []
    for s in seeds:  # the first seed's time includes the loading: the times sum to the whole
      results.append(_evaluate(setup, s, out_dir / f"seed_{s}", start, num_per_class=num_per_class,
                               figures=figures, tensorboard=tensorboard,
                               closeness_per_class=closeness_per_class))
      start = time.perf_counter()
  mean = mean_over_seeds(results)
  mean["per_seed"] = [f"seed_{s}/metrics.json" for s in seeds]
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "metrics.json").write_text(json.dumps(mean, indent=2) + "\n")
  log.info("mean over seeds %s written to %s", seeds, out_dir / "metrics.json")
  return mean


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_number_array(value, shape) -> bool:
  """A (nested) list of numbers of `shape`, such as per-class accuracies or a confusion matrix."""
  if not isinstance(value, list) or np.shape(value) != shape:
    return False
  flat = np.asarray(value, dtype=object).ravel()
  return flat.size > 0 and all(map(_is_number, flat))


def mean_over_seeds(results: list[dict]) -> dict:
  """One metrics dict from `run`'s results for several seeds: a field equal in every result is
  kept, a number becomes its mean (its least and greatest value in `spread`), a list or matrix
  of numbers (per-class accuracies, a confusion matrix) its element-wise mean, `wall_time_s`
  the total; `seed` becomes `seeds`. Each mean is of the figure as `run` computed it:
  `*_min_class` is the mean of each seed's weakest class."""
  mean = {"seeds": [r["seed"] for r in results]}
  spread = {}
  for key in results[0]:
    if key == "seed":
      continue
    values = [r.get(key) for r in results]
    if key == "wall_time_s":
      mean[key] = round(float(sum(values)), 2)
    elif all(v == values[0] for v in values):
      mean[key] = values[0]
    elif all(_is_number(v) for v in values):
      mean[key] = float(np.mean(values))
      spread[key] = [float(min(values)), float(max(values))]
    elif all(_is_number_array(v, np.shape(values[0])) for v in values):
      mean[key] = np.mean(np.asarray(values, dtype=np.float64), axis=0).tolist()
    else:
      mean[key] = values  # differs and has no mean (e.g. a record): one per seed
  mean["spread"] = spread
  return mean


def _verifier(verifier_dir, target_architecture: str, info):
  """`((classify, variables), record)` of the verifier run, or `(None, None)` without one."""
  if verifier_dir is None:
    return None, None
  v_model, v_vars, v_config, v_step = load_verifier(verifier_dir, target_architecture, info)
  record = {"workdir": paths.absolute(verifier_dir), "model": v_config.classifier.model,
            "step": int(v_step), "test_accuracy": _summary(verifier_dir).get("test_accuracy")}
  return (classify_fn(v_model, "penultimate"), v_vars), record


def run_images(run_dir, verifier_dir=None, *, out_dir=None, num_per_class: int = 500, seed: int = 0,
               closeness_per_class: int = 50, data_dir=None) -> dict:
  """The metrics of `run` for a set of images instead of a generator (the pixel baseline of
  `jaxinv pixel-invert`): the first `num_per_class` images of each class; no figures."""
  start = time.perf_counter()
  run_dir = Path(run_dir)
  images, labels, config = pixel_inversion.load_images(run_dir)
  info = data.info(config.dataset)
  chosen = first_per_class(labels, info.num_classes, num_per_class)
  gen_images, gen_labels = images[chosen], labels[chosen]
  inverted = target_lib.load(config)
  target = classify_target(inverted)
  verifier, verifier_record = _verifier(verifier_dir, inverted.architecture, info)
  data_dir = data_dir or config.data_dir or None
  real_images, real_labels = data.load(config.dataset, "test", data_dir=data_dir)
  train_images, _ = data.load(config.dataset, "train", data_dir=data_dir)
  scalars, _ = compute_metrics(
      gen_images=gen_images, gen_labels=gen_labels, num_classes=info.num_classes, target=target,
      verifier=verifier, real_images=real_images, real_labels=real_labels, train_images=train_images,
      closeness_per_class=closeness_per_class)
  summary = _summary(run_dir)
  result = {
      "inversion_dir": paths.absolute(run_dir), "dataset": config.dataset, "kind": "pixel_inversion",
      "generator_steps": summary.get("steps"), "pixel_steps": summary.get("steps"),
      "target_classifier": _target_record(config, inverted),
      "verifier": verifier_record, "num_per_class": int(np.max(np.bincount(gen_labels))), "seed": seed,
      "num_per_class_requested": num_per_class,
      "closeness_per_class": closeness_per_class, **scalars,
  }
  out_dir = Path(out_dir) if out_dir is not None else run_dir / "eval"
  out_dir.mkdir(parents=True, exist_ok=True)
  result["wall_time_s"] = round(time.perf_counter() - start, 2)
  (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
  (out_dir / "report.html").write_text(report_html(result, info.class_names, []))
  log.info("evaluation written to %s", out_dir)
  return result
