"""The `jaxinv` command.

    jaxinv demo --workdir DIR
    jaxinv train-classifier --config configs/mnist.py[:tiny] --workdir DIR [--config.FIELD=VALUE ...]
    jaxinv invert --config configs/mnist.py[:tiny] --workdir DIR --config.init_from=CLASSIFIER_DIR
    jaxinv sample --workdir DIR [--workdir DIR2 ...] --num-per-class N --out FILE.npz [--classes 0,3] [--seed 0]
    jaxinv ood train --config configs/ood_mnist.py[:tiny] --workdir DIR [--config.FIELD=VALUE ...]
    jaxinv ood evaluate --workdir DIR [--sets fashion_mnist,cifar10,gaussian,...]
    jaxinv ood score --workdir DIR --images FILE.npz --out FILE.npz
    jaxinv evaluate --workdir INV_DIR [--verifier CLASSIFIER_DIR] [--out DIR] [--num-per-class 500] [--seed 0 [1 2 ...]]
    jaxinv ablate --config configs/mnist.py --workdir DIR --config.init_from=CLASSIFIER_DIR [--verifier DIR]
    jaxinv reconstruct --config configs/reconstruct.py:mnist,cnn,1000 --workdir DIR [--config.FIELD=VALUE ...]
    jaxinv reconstruct-table --workdir DIR [--workdir DIR2 ...] [--out FILE.md]
    jaxinv figure inversions --workdir INV_DIR [--workdir INV_DIR2 ...] --out FIG.png
    jaxinv figure reconstructions --workdir TLDR_DIR [--workdir ...] --out FIG.png

Exit status: 0 done; 2 bad input or a stopped run (the message says which and
what to do); 3 a non-finite loss stopped training; 75 stopped by SIGTERM/SIGINT
after saving a checkpoint at the current step: rerun the same command to resume.
"""

import argparse
import json
import logging
import sys

import numpy as np
from etils.epath import Path

from jaxinv import paths

_OVERRIDE_PREFIX = "--config."
EXIT_NONFINITE = 3


def _split_overrides(argv):
  """Pulls `--config.FIELD=VALUE` (or `--config.FIELD VALUE`) out of argv."""
  rest, overrides = [], {}
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith(_OVERRIDE_PREFIX):
      name, eq, value = arg[len(_OVERRIDE_PREFIX):].partition("=")
      if not eq:
        if i + 1 >= len(argv):
          raise SystemExit(f"error: {arg} needs a value ({arg}=VALUE)")
        value, i = argv[i + 1], i + 1
      overrides[name] = value
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def _load_config(spec, overrides, default_dataset="digits"):
  from jaxinv import config as config_lib
  config = config_lib.load_config(spec) if spec else config_lib.default_config(default_dataset)
  config_lib.apply_overrides(config, overrides)
  config_lib.validate(config)
  return config


def _cmd_train_classifier(args, overrides):
  from jaxinv.runs import classifier
  summary = classifier.run(_load_config(args.config, overrides), args.workdir)
  print(json.dumps({k: summary[k] for k in ("test_accuracy", "wall_time_s", "process_index")
                    if k in summary}))


def _cmd_invert(args, overrides):
  from jaxinv.runs import inversion
  summary = inversion.run(_load_config(args.config, overrides), args.workdir)
  print(json.dumps({k: summary[k] for k in ("target_accuracy", "target_accuracy_min_class",
                                            "wall_time_s", "process_index") if k in summary}))


def _cmd_pixel_invert(args, overrides):
  from jaxinv.runs import pixel_inversion
  summary = pixel_inversion.run(_load_config(args.config, overrides), args.workdir)
  print(json.dumps({k: summary[k] for k in ("images", "final_target_accuracy", "seconds_per_1000_images")}))


def _cmd_demo(args, overrides):
  """Classifier + inversion on the embedded digits data: no download."""
  from jaxinv.runs import classifier, inversion
  config = _load_config(args.config, overrides)
  workdir = Path(args.workdir)
  cls = classifier.run(config, workdir / "classifier")
  config.init_from = str(workdir / "classifier")
  inv = inversion.run(config, workdir / "inversion")
  print(f"classifier test accuracy: {cls['test_accuracy']:.4f} ({workdir / 'classifier'})")
  print("generator target accuracy per class: "
        + " ".join(f"{a:.3f}" for a in inv["target_accuracy_per_class"]))
  print(f"samples: {workdir / 'inversion' / 'samples_grid.png'}")


def _cmd_sample(args, overrides):
  import jax
  from jaxinv import batch_inversion, sampling
  from jaxinv.runs import draw, inversion
  if overrides:
    raise SystemExit(f"error: sample takes no --config.* overrides (got {sorted(overrides)})")
  if args.num_per_class <= 0:
    raise SystemExit(f"error: --num-per-class must be positive, got {args.num_per_class}")
  # Each workdir gives one generator, or all members of an ensemble run.
  runs = [inversion.restore_generators(workdir) for workdir in args.workdir]
  generator, _, _, config = runs[0]
  for workdir, (other, _, _, _) in zip(args.workdir[1:], runs[1:]):
    if other.clone(dropout_rate=0.0) != generator.clone(dropout_rate=0.0):
      raise ValueError(f"{workdir} holds another generator architecture than {args.workdir[0]}; "
                       "only generators of the same generator.* config can be sampled together.")
  classes = (range(generator.num_classes) if args.classes is None
             else [int(c) for c in args.classes.split(",")])
  labels = sampling.labels_for(args.num_per_class, classes)
  # One compiled call per chunk for all generators (vmapped over their stacked params).
  names = [f"{w}[{i}]" for w, (_, v, _, _) in zip(args.workdir, runs)
           for i in range(len(jax.tree.leaves(v)[0]))]
  stacked = batch_inversion.stack(
      [jax.tree.map(lambda x, i=i: x[i], v) for _, v, _, _ in runs
       for i in range(len(jax.tree.leaves(v)[0]))], names=names)
  rates = np.concatenate([r for _, _, r, _ in runs])
  key, extra = jax.random.key(args.seed), {}
  accept = draw.acceptor(config, draw.threshold(config, args.accept_threshold), args.accept_by)
  if accept is not None:  # rejection sampling, one generator after another
    drawn = [draw.images(generator.clone(dropout_rate=float(rate)),
                         jax.tree.map(lambda x, g=g: x[g], stacked), labels, key, config, accept)
             for g, rate in enumerate(rates)]
    images = np.stack([d[0] for d in drawn])
    extra = {"acceptance_per_class": np.array([d[1]["acceptance_per_class"] for d in drawn],
                                              np.float32)}
  else:
    images = batch_inversion.sample_many(generator, stacked, labels, key,
                                         dropout=config.generator.dropout_at_sampling,
                                         dropout_rates=rates)
  count = len(names)
  out = Path(args.out)  # local or a bucket (gs://...)
  out.parent.mkdir(parents=True, exist_ok=True)
  arrays = {"images": images.reshape(-1, *images.shape[2:]).astype(np.float32),
            "labels": np.tile(labels, count).astype(np.int64)}
  if count > 1:  # images of generator g are rows g*N … (g+1)*N-1
    arrays["generator"] = np.repeat(np.arange(count), len(labels)).astype(np.int64)
    arrays["generator_names"] = np.array(names)  # "WORKDIR[member]"
  arrays.update(extra)
  paths.save_npz(out, **arrays)
  print(f"wrote {len(arrays['labels'])} images {images.shape[2:]} from {count} generator(s) to {out}")


def _acceptance_arguments(parser):
  parser.add_argument("--accept-threshold", type=float, default=None,
                      help="keep only generated images that every --accept-by classifier gives "
                           "their label with at least this probability (rejection sampling; "
                           "default: the run's generator.accept_threshold; 0: keep all)")
  parser.add_argument("--accept-by", nargs="+", default=None, metavar="WORKDIR",
                      help="classifier runs that accept or reject (default: the run's "
                           "classifier_ensemble.workdirs)")


def _cmd_ood(args, overrides):
  """OOD detection with a garbage class fed by inversion (jaxinv.runs.ood)."""
  from jaxinv.runs import ood as ood_run
  if args.ood_command == "train":
    summary = ood_run.run(_load_config(args.config, overrides), args.workdir)
    last = summary["round_summaries"][-1]
    print(json.dumps({"rounds": summary["rounds"], "test_accuracy": last["test_accuracy"],
                      "baseline_test_accuracy": summary["baseline"],
                      "wall_time_s": summary["wall_time_s"]}))
    return
  if overrides:
    raise SystemExit(f"error: ood {args.ood_command} takes no --config.* overrides (got {sorted(overrides)})")
  if args.ood_command == "evaluate":
    sets = [s for s in args.sets.split(",") if s] if args.sets else None
    result = ood_run.evaluate(args.workdir, sets)
    print(result["table"])
    print(f"wrote {Path(args.workdir) / 'ood_eval.json'}, ood_table.md, score_histograms.png, "
          "garbage_rounds.png")
    return
  path = Path(args.images)
  if not path.is_file():
    raise FileNotFoundError(f"--images {path} does not exist (expected an .npz with an `images` "
                            "array, N×H×W×C in [-1, 1]).")
  arrays = paths.load_npz(path)
  if "images" not in arrays:
    raise ValueError(f"{path} has no `images` array (it holds {sorted(arrays)}); save the images "
                     "as np.savez(FILE, images=...).")
  images = arrays["images"]
  detector = ood_run.restore(args.workdir)
  images = ood_run.check_images(images, detector.model_input_shape, source=str(path))
  scores = ood_run.score(detector, images)
  out = Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  paths.save_npz(out, **scores)
  print(f"wrote {', '.join(scores)} for {len(images)} images to {out} (scores: higher = more OOD; "
        f"prediction {detector.garbage_class} = garbage)")


def _cmd_evaluate(args, overrides):
  from jaxinv.runs import evaluation
  if overrides:
    raise SystemExit(f"error: evaluate takes no --config.* overrides (got {sorted(overrides)})")
  kwargs = dict(out_dir=args.out, num_per_class=args.num_per_class, member=args.member,
                figures=not args.no_figures, tensorboard=not args.no_figures,
                accept_threshold=args.accept_threshold, accept_by=args.accept_by)
  out = Path(args.out or Path(args.workdir) / "eval")
  if len(args.seed) == 1:
    result = evaluation.run(args.workdir, args.verifier, seed=args.seed[0], **kwargs)
  else:
    result = evaluation.run_seeds(args.workdir, args.verifier, seeds=args.seed, **kwargs)
  print(json.dumps({k: result[k] for k in ("target_accuracy", "verifier_accuracy",
                                           "generated_within_class_cosine", "real_within_class_cosine",
                                           "knn_precision", "knn_recall", "generated_nn_ssim")
                    if k in result}))
  if len(args.seed) == 1:
    print(f"report: {out / 'report.html'}")
  else:
    print(f"mean over seeds {args.seed}: {out / 'metrics.json'}; "
          f"reports: {out / 'seed_S' / 'report.html'}")


def _cmd_ablate(args, overrides):
  from jaxinv.runs import ablation
  modes = tuple(args.modes.split(",")) if args.modes else ablation.ABLATION_MODES
  ablation.run(_load_config(args.config, overrides), args.workdir, args.verifier, modes=modes,
               num_per_class=args.num_per_class, seed=args.seed)
  print((Path(args.workdir) / "ablation.md").read_text(), end="")


def _cmd_ablate_priors(args, overrides):
  from jaxinv.runs import faithful_ablation
  rows = tuple(args.rows.split(",")) if args.rows else None
  faithful_ablation.run(_load_config(args.config, overrides), args.workdir, args.verifier, rows=rows,
                        num_per_class=args.num_per_class, seed=args.seed,
                        held_out_dir=args.held_out_verifier)
  print((Path(args.workdir) / "faithful_ablation.md").read_text(), end="")


def _cmd_reconstruct(args, overrides):
  from jaxinv.runs import reconstruction
  audit = reconstruction.run(_load_config(args.config, overrides), args.workdir)
  print(reconstruction.markdown_table([audit]), end="")
  print(f"audit: {Path(args.workdir) / 'audit.json'}; figure: {Path(args.workdir) / 'best_matches.png'}")


def _cmd_reconstruct_table(args, overrides):
  from jaxinv.runs import reconstruction
  if overrides:
    raise SystemExit(f"error: reconstruct-table takes no --config.* overrides (got {sorted(overrides)})")
  audits = []
  for workdir in args.workdir:
    path = Path(workdir) / "audit.json"
    if not path.is_file():
      raise FileNotFoundError(f"{workdir} has no audit.json: expected the workdir of a finished "
                              "`jaxinv reconstruct` run.")
    audits.append(json.loads(path.read_text()))
  table = reconstruction.markdown_table(audits)
  if args.out:
    Path(args.out).write_text(table)
  print(table, end="")


def _cmd_figure(args, overrides):
  from jaxinv import paths
  from jaxinv.runs import paper_figures
  if overrides:
    raise SystemExit(f"error: figure takes no --config.* overrides (got {sorted(overrides)})")
  if args.figure_kind == "inversions":
    figure = paper_figures.inversions(args.workdir, num_per_class=args.num_per_class, seed=args.seed)
  else:
    figure = paper_figures.reconstructions(args.workdir, pairs=args.pairs)
  paths.save_figure(figure, args.out)
  print(f"wrote {args.out}")


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="jaxinv", description="Network inversion in JAX.")
  sub = parser.add_subparsers(dest="command", required=True)
  for name, helptext in (("demo", "classifier + inversion on the embedded digits data"),
                         ("train-classifier", "train the classifier to invert"),
                         ("invert", "train a conditioned generator against a classifier")):
    p = sub.add_parser(name, help=helptext,
                       epilog="Override any config field with --config.FIELD=VALUE.")
    p.add_argument("--config", default=None if name == "demo" else argparse.SUPPRESS,
                   required=name != "demo", help="config file, e.g. configs/mnist.py[:tiny]")
    p.add_argument("--workdir", required=True)
  p = sub.add_parser("pixel-invert", help="the DeepInversion baseline: optimise pixels directly with "
                                          "the inversion loss and priors (evaluate with `evaluate`)",
                     epilog="Override any config field with --config.FIELD=VALUE.")
  p.add_argument("--config", required=True, help="config file, e.g. configs/faithful.py:mnist_pixels")
  p.add_argument("--workdir", required=True)
  p = sub.add_parser("sample", help="write generated images for requested labels to an .npz")
  p.add_argument("--workdir", required=True, action="append",
                 help="the workdir of a `jaxinv invert` run; repeat to sample several generators "
                      "of the same architecture in one compiled call")
  p.add_argument("--num-per-class", type=int, required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--classes", default=None, help="comma-separated labels (default: all)")
  p.add_argument("--seed", type=int, default=0)
  _acceptance_arguments(p)
  p = sub.add_parser("ood", help="OOD detection with a garbage class fed by inversion")
  ood_sub = p.add_subparsers(dest="ood_command", required=True)
  q = ood_sub.add_parser("train", help="the train–invert–exclude loop and the plain baseline",
                         epilog="Override any config field with --config.FIELD=VALUE.")
  q.add_argument("--config", required=True, help="config file, e.g. configs/ood_mnist.py[:tiny]")
  q.add_argument("--workdir", required=True)
  q = ood_sub.add_parser("evaluate", help="every score on every OOD set: a table, JSON and figures")
  q.add_argument("--workdir", required=True, help="the workdir of a finished `jaxinv ood train`")
  q.add_argument("--sets", default=None,
                 help="comma-separated OOD sets: dataset names (mnist, fashion_mnist, cifar10, "
                      "svhn_cropped, digits) or gaussian, uniform, flipped, inverted "
                      "(default: the other dataset of the pair, cifar10 and the synthetic sets)")
  q = ood_sub.add_parser("score", help="score any images with every score (higher = more OOD)")
  q.add_argument("--workdir", required=True, help="the workdir of a finished `jaxinv ood train`")
  q.add_argument("--images", required=True, help=".npz with `images`, N×H×W×C in [-1, 1]")
  q.add_argument("--out", required=True, help="output .npz")
  p = sub.add_parser("evaluate", help="metrics, figures, TensorBoard events and report.html for an "
                                      "inversion run (written to WORKDIR/eval/)")
  p.add_argument("--workdir", required=True, help="the workdir of a `jaxinv invert` run")
  p.add_argument("--verifier", default=None,
                 help="workdir of a classifier of another architecture (configs/verifier.py)")
  p.add_argument("--out", default=None, help="output folder (default WORKDIR/eval)")
  p.add_argument("--num-per-class", type=int, default=500)
  p.add_argument("--seed", type=int, nargs="+", default=[0],
                 help="evaluation seed; several (--seed 1 2 3): one evaluation each in OUT/seed_S/ "
                      "and the mean of every metric in OUT/metrics.json")
  p.add_argument("--member", type=int, default=0, help="ensemble member to evaluate")
  p.add_argument("--no-figures", action="store_true", help="metrics and report only")
  _acceptance_arguments(p)
  p = sub.add_parser("ablate", help="one generator per conditioning mode, with and without the "
                                    "cosine + orthogonality losses; a table of the results",
                     epilog="Override any config field with --config.FIELD=VALUE.")
  p.add_argument("--config", required=True, help="config file, e.g. configs/mnist.py[:tiny]")
  p.add_argument("--workdir", required=True, help="one sub-workdir per row is made under it")
  p.add_argument("--verifier", default=None, help="verifier classifier workdir (configs/verifier.py)")
  p.add_argument("--modes", default=None, help="comma-separated subset of label,vector,matrix,vector_matrix")
  p.add_argument("--num-per-class", type=int, default=500)
  p.add_argument("--seed", type=int, default=0, help="evaluation seed (training uses config.seed)")
  p = sub.add_parser("ablate-priors", help="what each faithful-inversion ingredient buys: the paper's "
                                           "method, + each prior, + all, the pixel baseline",
                     epilog="Override any config field with --config.FIELD=VALUE.")
  p.add_argument("--config", required=True, help="a preset with every ingredient on, e.g. "
                                                  "configs/faithful.py:mnist")
  p.add_argument("--workdir", required=True, help="one sub-workdir per row is made under it")
  p.add_argument("--verifier", default=None, help="verifier classifier workdir (configs/verifier.py)")
  p.add_argument("--held-out-verifier", default=None,
                 help="a second verifier (another family, configs/verifier.py:DATASET,FAMILY), reported "
                      "beside --verifier: choose settings on one, report on the other")
  p.add_argument("--rows", default=None, help="comma-separated rows (default: paper, each ingredient "
                                              "the preset turns on, all, pixels)")
  p.add_argument("--num-per-class", type=int, default=200)
  p.add_argument("--seed", type=int, default=0, help="evaluation seed (training uses config.seed)")
  p = sub.add_parser("reconstruct", help="training-like data reconstruction (TLDR) and its privacy "
                                         "audit against the classifier's training images",
                     epilog="Override any config field with --config.FIELD=VALUE.")
  p.add_argument("--config", required=True, help="config file, e.g. configs/reconstruct.py:mnist,cnn,1000")
  p.add_argument("--workdir", required=True)
  p = sub.add_parser("reconstruct-table", help="a markdown table of finished `jaxinv reconstruct` runs")
  p.add_argument("--workdir", required=True, action="append", help="a reconstruct workdir; repeat")
  p.add_argument("--out", default=None, help="also write the table to this file")
  p = sub.add_parser("figure", help="the paper's figures from finished runs")
  figure_sub = p.add_subparsers(dest="figure_kind", required=True)
  q = figure_sub.add_parser("inversions", help="generated images per class, one panel per "
                                               "inversion run (the paper's Figure 2)")
  q.add_argument("--workdir", required=True, action="append", help="a `jaxinv invert` workdir; repeat")
  q.add_argument("--out", required=True, help="output image (.png)")
  q.add_argument("--num-per-class", type=int, default=6)
  q.add_argument("--seed", type=int, default=0)
  q = figure_sub.add_parser("reconstructions", help="reconstructions above their best-matching "
                                                    "training images (the paper's Figure 5)")
  q.add_argument("--workdir", required=True, action="append", help="a `jaxinv reconstruct` workdir; repeat")
  q.add_argument("--out", required=True, help="output image (.png)")
  q.add_argument("--pairs", type=int, default=8)
  return parser


_COMMANDS = {"demo": _cmd_demo, "train-classifier": _cmd_train_classifier, "invert": _cmd_invert,
             "sample": _cmd_sample, "ood": _cmd_ood, "evaluate": _cmd_evaluate, "ablate": _cmd_ablate,
             "reconstruct": _cmd_reconstruct, "reconstruct-table": _cmd_reconstruct_table}
_COMMANDS["pixel-invert"] = _cmd_pixel_invert
_COMMANDS["figure"] = _cmd_figure
_COMMANDS["ablate-priors"] = _cmd_ablate_priors


def command(argv=None) -> int:
  """The `jaxinv` console script (and `train/*.py`): `main(argv)`, on a CPU backend in a process
  whose malloc uses transparent huge pages (`jaxinv.cpu.host_memory`; the process restarts
  itself once to set glibc's tunables) unless JAXINV_CPU=off."""
  import jaxinv.cpu
  from jaxinv.cpu import host_memory
  try:
    if jaxinv.cpu.wanted_by_command():
      host_memory.restart_with_huge_pages()
  except ValueError:
    pass  # a bad JAXINV_CPU or JAXINV_HOST_MEMORY: main() reports it
  return main(argv)


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  rest, overrides = _split_overrides(argv)
  args = build_parser().parse_args(rest)
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
  logging.getLogger("jaxinv").setLevel(logging.INFO)
  try:  # Orbax logs every save step at INFO through absl.
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)
  except ImportError:
    pass
  import jaxinv.cpu
  from jaxinv.checkpoint import CheckpointError
  from jaxinv.loop import EXIT_PREEMPTED, Preempted
  switched_on = jaxinv.cpu.enabled()
  try:
    # The command's CPU machinery (docs/performance-cpu.md): XLA flags and malloc before JAX's
    # backend starts, hand-made convolutions on a CPU; back off afterwards for a caller's session.
    if jaxinv.cpu.wanted_by_command():
      jaxinv.cpu.enable()
    _COMMANDS[args.command](args, overrides)
  except Preempted as stop:
    print(f"jaxinv {args.command}: {stop}", file=sys.stderr)
    return EXIT_PREEMPTED
  except FloatingPointError as err:
    print(f"jaxinv {args.command}: error: {err}", file=sys.stderr)
    return EXIT_NONFINITE
  except (ValueError, KeyError, FileNotFoundError, PermissionError, CheckpointError) as err:
    message = err.args[0] if isinstance(err, KeyError) and err.args else err
    print(f"jaxinv {args.command}: error: {message}", file=sys.stderr)
    return 2
  finally:
    if not switched_on:
      jaxinv.cpu.disable()
  return 0


if __name__ == "__main__":
  sys.exit(command())
