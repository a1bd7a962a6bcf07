"""Every round's K+1-class classifier of a finished `jaxinv ood train` run, alone and as
snapshot ensembles of the last m rounds: ID accuracy and, per OOD set, the garbage score's
AUROC / FPR@95 (%) / detection (%) — the figures behind the choice of `ood.rounds` and
`ood.detector_rounds` — and, with --energy-weights, the detector's `garbage_energy` score (its
garbage log-odds plus the weight times the plain baseline classifier's free energy) for each
weight (the choice of `ood.energy_weight`).

    python benchmarks/ood_rounds.py --workdir runs/ood_fashion_mnist [--sets mnist,flipped]
        [--max-images 10000] [--last 5] [--split train] [--energy-weights 0,0.5,1]

Uses the run's own saved config, data and OOD sets (`jaxinv.runs.ood.load_ood_set`);
inference only (each classifier's logits are computed once). Prints markdown tables.
`--split train` chooses without the test sets: the last --max-images *training* images of
each OOD dataset (never used by the run) and of the in-distribution dataset (seen in
training, so its accuracy is only a sanity check); synthetic sets are made from those.
"""

import argparse

import numpy as np

import jaxinv.cpu
from jaxinv import data, metrics, ood
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import ood as ood_run
from jaxinv.runs.workdir import read_config


def figures(logits_in, labels, logits_out: dict, garbage_class: int) -> list[str]:
  """ID accuracy, then AUROC / FPR@95 / detection of the garbage score on each set."""
  cells = [f"{100 * metrics.accuracy(logits_in.argmax(-1), labels):.2f}"]
  score_in = ood.garbage_score(logits_in)
  for out in logits_out.values():
    score_out = ood.garbage_score(out)
    cells.append(f"{metrics.auroc(score_in, score_out):.4f} / "
                 f"{100 * metrics.fpr_at_tpr(score_in, score_out):.2f} / "
                 f"{100 * metrics.detection_rate(out.argmax(-1), garbage_class):.1f}")
  return cells


def held_out_set(name: str, config, id_images, count: int):
  """OOD set `name` from the last `count` training images of that dataset (the test split's
  images are what `jaxinv ood evaluate` reports); synthetic sets as `load_ood_set` makes them."""
  if name not in data.DATASETS or name == config.dataset:
    return ood_run.load_ood_set(name, config, id_images)[:count]
  images, _ = data.load(name, "train", data_dir=config.data_dir or None)
  images = images[-count:]
  shape = data.info(config.dataset).image_shape
  return images if tuple(images.shape[1:]) == tuple(shape) else data.resize_images(images, shape)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--sets", default=None,
                      help="comma-separated OOD sets (default: the run's first OOD set and flipped)")
  parser.add_argument("--max-images", type=int, default=10000)
  parser.add_argument("--last", type=int, default=5, help="ensembles of the last 1 … N rounds")
  parser.add_argument("--energy-weights", default=None,
                      help="comma-separated ood.energy_weight values: also a table of the "
                           "detector's garbage_energy score for each")
  parser.add_argument("--split", choices=("test", "train"), default="test",
                      help="train: held-out training images instead of the test sets (see above)")
  args = parser.parse_args()
  jaxinv.cpu.enable()  # the CPU machinery the jaxinv command runs with (inert off a CPU)

  config = read_config(args.workdir, ood_run.PRODUCED_BY)
  rounds = config.ood.rounds
  sets = (args.sets.split(",") if args.sets
          else [ood_run.DEFAULT_SETS[config.dataset][0], "flipped"])
  data_dir = config.data_dir or None
  if args.split == "test":
    test_x, test_y = data.load(config.dataset, "test", data_dir=data_dir)
    test_x, test_y = test_x[:args.max_images], test_y[:args.max_images]
    out_images = {name: ood_run.load_ood_set(name, config, test_x)[:args.max_images] for name in sets}
  else:
    test_x, test_y = data.load(config.dataset, "train", data_dir=data_dir)
    test_x, test_y = test_x[-args.max_images:], test_y[-args.max_images:]
    out_images = {name: held_out_set(name, config, test_x, args.max_images) for name in sets}
  model, variables = ood_run.round_classifiers(args.workdir, range(rounds + 1), config)
  garbage_class = ood_run.garbage_info(config).num_classes - 1
  logits_in = [ood_run.logits_of(model, v, test_x) for v in variables]
  logits_out = {n: [ood_run.logits_of(model, v, x) for v in variables] for n, x in out_images.items()}

  header = " | ".join(f"{n} ({len(out_images[n])}) AUROC / FPR@95 / det." for n in sets)
  print(f"{args.workdir}: {config.dataset} in-distribution, {len(test_x)} {args.split} images; "
        "garbage score; FPR@95 with positives = in-distribution\n")
  print(f"| round, classifier alone | ID acc. (%) | {header} |")
  print("|---" * (2 + len(sets)) + "|")
  for r in range(rounds + 1):
    cells = figures(logits_in[r], test_y, {n: v[r] for n, v in logits_out.items()}, garbage_class)
    print(f"| {r} | " + " | ".join(cells) + " |")
  print(f"\n| mean of the last m rounds | ID acc. (%) | {header} |")
  print("|---" * (2 + len(sets)) + "|")
  for m in range(1, min(args.last, rounds + 1) + 1):
    mean_in = ood.mean_probability_logits(logits_in[-m:])
    mean_out = {n: ood.mean_probability_logits(v[-m:]) for n, v in logits_out.items()}
    marker = " (config)" if m == config.ood.detector_rounds else ""
    print(f"| {m}{marker} | " + " | ".join(figures(mean_in, test_y, mean_out, garbage_class)) + " |")
  if args.energy_weights:
    m = config.ood.detector_rounds
    base_model, base_variables, _, _ = classifier_run.restore(f"{args.workdir}/baseline")
    base_in = ood_run.logits_of(base_model, base_variables, test_x)
    base_out = {n: ood_run.logits_of(base_model, base_variables, x) for n, x in out_images.items()}
    print(f"\n| energy weight (garbage_energy score, the config's last {m} rounds) | "
          + " | ".join(f"{n} AUROC / FPR@95" for n in sets) + " |")
    print("|---" * (1 + len(sets)) + "|")
    for weight in (float(w) for w in args.energy_weights.split(",")):
      score_in = ood.garbage_energy_score(logits_in[-m:], [base_in], weight)
      cells = []
      for name, v in logits_out.items():
        score_out = ood.garbage_energy_score(v[-m:], [base_out[name]], weight)
        cells.append(f"{metrics.auroc(score_in, score_out):.4f} / "
                     f"{100 * metrics.fpr_at_tpr(score_in, score_out):.2f}")
      marker = " (config)" if weight == config.ood.energy_weight else ""
      print(f"| {weight:g}{marker} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  np.set_printoptions(precision=4)
  main()
