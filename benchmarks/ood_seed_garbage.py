"""Choosing the OOD loop's garbage seed without test images: one K+1-class classifier epoch
(the loop's round 0, nothing but the seed as garbage) per variant, scored on held-out
*training* images.

    python benchmarks/ood_seed_garbage.py --config configs/ood_cifar10.py \
        --variant "none ood.shifted_images=0" \
        --variant 'turned_permuted ood.shifted_transforms=["rotate90","permute_channels"]'

Each `--variant "NAME FIELD=VALUE ..."` lays its overrides over the config (values parsed
as `--config.FIELD=VALUE` would be). The last --held-out training images of the
in-distribution set are left out of training and stand for it; each OOD set is the last
--held-out training images of that dataset (never used by `jaxinv ood evaluate`, which
scores test splits), synthetic sets made from the held-out ID images. Prints one markdown
row per variant: held-out ID accuracy and the garbage score's AUROC per set. Round 0 alone
is a proxy: later rounds add inversions and pixel-space hard negatives to garbage.
"""

import argparse
import pathlib
import tempfile
import time

import numpy as np

import jaxinv.cpu
from jaxinv import config as config_lib, metrics, ood, rng, sharding
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import ood as ood_run
from ood_rounds import held_out_set


def parse_variant(text: str):
  name, *fields = text.split()
  bad = [f for f in fields if "=" not in f]
  if bad:
    raise SystemExit(f"--variant {text!r}: {bad} is not FIELD=VALUE.")
  return name, dict(f.split("=", 1) for f in fields)


def row(config, sets, held_out: int, workdir) -> list[str]:
  info = ood_run.garbage_info(config)
  train_x, train_y = classifier_run.load_split(config, "train")
  keep_x, keep_y = train_x[:-held_out], train_y[:-held_out]
  hold_x, hold_y = train_x[-held_out:], train_y[-held_out:]
  model = classifier_run.build_model(config, info.num_classes)
  start = time.perf_counter()
  variables, _ = ood_run._train_classifier(
      config, workdir, 0, model=model, mesh=sharding.make_mesh(config.num_devices),
      keys=rng.named_keys(config.seed, ood_run.KEY_NAMES), train_x=keep_x, train_y=keep_y,
      seed=ood_run.seed_images(config, keep_x), previous=None)
  logits_in = ood_run.logits_of(model, variables, hold_x)
  score_in = ood.garbage_score(logits_in)
  cells = [f"{100 * metrics.accuracy(logits_in.argmax(-1), hold_y):.2f}"]
  for name in sets:
    logits_out = ood_run.logits_of(model, variables, held_out_set(name, config, hold_x, held_out))
    cells.append(f"{metrics.auroc(score_in, ood.garbage_score(logits_out)):.4f}")
  return cells + [f"{time.perf_counter() - start:.0f}"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--config", required=True, help="an ood config, e.g. configs/ood_cifar10.py")
  parser.add_argument("--variant", action="append", required=True, help='"NAME FIELD=VALUE ..."')
  parser.add_argument("--sets", default="mnist,fashion_mnist,flipped,inverted")
  parser.add_argument("--held-out", type=int, default=5000)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  jaxinv.cpu.enable()  # the CPU machinery the jaxinv command runs with (inert off a CPU)
  sets = args.sets.split(",")
  variants = [parse_variant(v) for v in args.variant]
  configs = []
  for name, overrides in variants:  # every variant checked before any trains
    config = config_lib.load_config(args.config)
    config_lib.apply_overrides(config, {"seed": str(args.seed), **overrides})
    config_lib.validate(config)
    config.ood.shifted_from_round = 0  # round 0 here trains on the whole seed, shifted images included
    configs.append(config)
  print(f"{args.config}, seed {args.seed}: round-0 classifier, {args.held_out} held-out training "
        "images per set; garbage-score AUROC\n")
  print("| variant | ID acc. (%) | " + " | ".join(sets) + " | train + score (s) |")
  print("|---" * (3 + len(sets)) + "|")
  for (name, _), config in zip(variants, configs):
    with tempfile.TemporaryDirectory() as workdir:
      cells = row(config, sets, args.held_out, pathlib.Path(workdir))
    print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
  main()
