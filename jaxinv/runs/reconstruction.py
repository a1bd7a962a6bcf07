"""Training-like data reconstruction and its privacy audit: `run(config, workdir)`.

    WORKDIR/classifier/      the classifier (unless config.init_from names one), with
                             train_indices.npy when it trains on a subset
    WORKDIR/reconstruction/  the generator trained with the reconstruction terms
    WORKDIR/plain/           the control: the same generator without them (plain inversion)
    WORKDIR/audit.json       per image set: best same-class SSIM, Hungarian matches ≥ threshold
    WORKDIR/reconstructions.npz, best_matches.png

Each stage is a resumable run of its own; rerunning the command resumes where it stopped.
"""

import json
import logging
import time

import jax
import ml_collections
import numpy as np
from etils.epath import Path

from jaxinv import data, leakage, paths, plotting, priors, reconstruction, sampling, subsets
from jaxinv import config as config_lib
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import inversion
from jaxinv.runs.workdir import Workdir, read_config

log = logging.getLogger(__name__)
FIGURE_PAIRS = 12
_SAMPLE_SALT, _TEST_SALT = 1, 2


def plain_config(config):
  """The control: the same generator and classifier, no reconstruction terms or priors."""
  plain = ml_collections.ConfigDict(config.to_dict())
  for name in reconstruction.TERMS:
    plain.reconstruction[name] = 0.0
  for name in priors.IMAGE_PRIORS:
    plain.priors[name] = 0.0
  return plain


def training_set(classifier_dir, data_dir):
  """The classifier's exact training images: `(images, labels, indices)`."""
  cls_config = read_config(classifier_dir, "jaxinv train-classifier")
  images, labels = data.load(cls_config.dataset, "train", data_dir=data_dir or None)
  saved = Path(classifier_dir) / "train_indices.npy"
  if saved.is_file():
    indices = paths.load_npy(saved)
  else:  # a run from before indices were saved: recompute them from its config
    indices = classifier_run.train_indices(cls_config, labels)
  return images[indices], labels[indices], indices


def held_out(config, per_class: int, num_classes: int):
  """`per_class` random test images of each class (seeded): the non-member control."""
  images, labels = data.load(config.dataset, "test", data_dir=config.data_dir or None)
  idx = subsets.select(labels, per_class * num_classes, "stratified", config.seed + _TEST_SALT)
  return images[idx], labels[idx]


def _generated(inversion_dir, per_class: int, seed: int):
  generator, variables, gen_config = inversion.restore(inversion_dir)
  labels = sampling.labels_for(per_class, range(generator.num_classes))
  key = jax.random.fold_in(jax.random.key(seed), _SAMPLE_SALT)
  return sampling.sample(generator, variables, labels, key,
                         dropout=gen_config.generator.dropout_at_sampling), labels


def _public(audit: dict) -> dict:
  return {k: v for k, v in audit.items() if not isinstance(v, np.ndarray)}


def run(config, workdir) -> dict:
  config_lib.validate(config)
  config = config_lib.with_absolute_paths(config)
  if config.generator.mode != "one_hot":
    raise ValueError(f"Reconstruction conditions the generator on one-hot labels; set "
                     f"generator.mode='one_hot' (got {config.generator.mode!r}).")
  work = Workdir(workdir)
  start = time.perf_counter()
  wall = {}
  rc = config.reconstruction

  classifier_dir = Path(config.init_from) if config.init_from else work.path / "classifier"
  if not config.init_from:
    t = time.perf_counter()
    classifier_summary = classifier_run.run(config, classifier_dir)
    wall["classifier_s"] = round(time.perf_counter() - t, 1)
  else:
    classifier_summary = json.loads((classifier_dir / "summary.json").read_text())
  config.init_from = str(classifier_dir)

  runs = {"reconstruction": config}
  if rc.plain_control:
    runs["plain"] = plain_config(config)
  for name, run_config in runs.items():
    t = time.perf_counter()
    inversion.run(run_config, work.path / name)
    wall[f"{name}_generator_s"] = round(time.perf_counter() - t, 1)

  t = time.perf_counter()
  info = data.info(config.dataset)
  train_x, train_y, indices = training_set(classifier_dir, config.data_dir)
  sets = {name: _generated(work.path / name, rc.samples_per_class, config.seed) for name in runs}
  sets["test_control"] = held_out(config, rc.samples_per_class, info.num_classes)
  audits = {name: leakage.leakage_summary(images, labels, train_x, train_y, rc.ssim_threshold,
                                          candidates=rc.ssim_candidates)
            for name, (images, labels) in sets.items()}
  wall["audit_s"] = round(time.perf_counter() - t, 1)

  recon_x, recon_y = sets["reconstruction"]
  best = audits["reconstruction"]
  shown = best["match_rows"][:FIGURE_PAIRS], best["match_cols"][:FIGURE_PAIRS]
  work.save_figure(plotting.match_pairs(
      recon_x[shown[0]], train_x[shown[1]], best["match_scores"][:FIGURE_PAIRS], recon_y[shown[0]],
      info.class_names, title=f"{config.dataset}, {len(train_y)} training images, "
      f"{classifier_summary.get('model', config.classifier.model)}: best Hungarian matches (SSIM)"),
      "best_matches.png")
  paths.save_npz(work.path / "reconstructions.npz", images=recon_x, labels=recon_y,
           best_ssim=best["best_ssim"], best_train_index=indices[best["best_index"]])

  audit = {
      "dataset": config.dataset,
      "classifier": {"workdir": str(classifier_dir), "model": config.classifier.model,
                     "train_examples": int(len(train_y)),
                     "test_accuracy": classifier_summary.get("test_accuracy")},
      "seed": config.seed,
      "subset_seed": config.subset_seed,
      "ssim_threshold": rc.ssim_threshold,
      "ssim_candidates": rc.ssim_candidates,
      "samples_per_class": rc.samples_per_class,
      "terms": {**{k: float(rc[k]) for k in reconstruction.TERMS},
                **{k: float(config.priors[k]) for k in priors.IMAGE_PRIORS}},
      **{name: _public(a) for name, a in audits.items()},
      "wall_time_s": {**wall, "total_s": round(time.perf_counter() - start, 1)},
  }
  (work.path / "audit.json").write_text(json.dumps(audit, indent=2) + "\n")
  log.info("audit: %s", {k: audit[k]["matched_at_threshold"] for k in audits})
  return audit


TABLE_SETS = (("reconstruction", "recon"), ("plain", "plain inversion"), ("test_control", "test images"))


def markdown_table(audits) -> str:
  """One row per audit (`audit.json` contents): matches ≥ threshold and mean best SSIM of
  the reconstructions and of both controls."""
  head = ["dataset", "model", "train images", "test acc"]
  for _, label in TABLE_SETS:
    head += [f"{label}: matched", f"{label}: mean best SSIM"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for a in audits:
    c = a["classifier"]
    acc = c.get("test_accuracy")
    row = [a["dataset"], c["model"], str(c["train_examples"]),
           f"{100 * acc:.2f} %" if acc is not None else "–"]
    for name, _ in TABLE_SETS:
      if name in a:
        s = a[name]
        row += [f"{s['matched_at_threshold']}/{s['images']} ({100 * s['matched_share_of_train']:.2f} % of train)",
                f"{s['mean_best_ssim']:.3f}"]
      else:
        row += ["–", "–"]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines) + "\n"
