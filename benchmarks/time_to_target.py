"""Time from a trained classifier to a generator with ≥ 99 % target accuracy on every class.

    python benchmarks/time_to_target.py --classifier runs/mnist_cls \
        [--config configs/mnist.py:fast] [--steps 200 300 400] \
        [--set inversion.learning_rate=4e-3 ...] [--workdir /tmp/ttt]

For each step count, trains one generator from scratch with `jaxinv invert`'s own
code (`jaxinv.runs.inversion.run`: compile, every step, checkpoints) and evaluates it
the way `summary.json` does (500 samples per class, generator dropout on as sampled).
Prints the training wall time (process-level: compile included, evaluation excluded),
the minimum per-class target accuracy, and whether it reached the target. The time to
the target is the smallest training time whose generator reached it. Each step count is
a separate run because the learning-rate schedule decays to zero at the last step.
Like the `jaxinv` command it runs XLA:CPU's convolutions on Eigen unless
JAXINV_CPU_CONVOLUTIONS=ynnpack (`jaxinv.cpu.convolutions`) and sets malloc from
JAXINV_HOST_MEMORY (`jaxinv.cpu.host_memory`: unset restarts it with huge pages).
"""

import argparse
import json
import tempfile
from pathlib import Path

from jaxinv import config as config_lib
import jaxinv.cpu
from jaxinv.cpu import convolutions as cpu_convolutions, host_memory
from jaxinv.runs import inversion


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--classifier", required=True, help="workdir of a `jaxinv train-classifier` run")
  parser.add_argument("--config", default="mnist",
                      help="a dataset preset of jaxinv.config.default_config, or a config file "
                           "`path/to/config.py[:arg]`")
  parser.add_argument("--steps", type=int, nargs="+", default=[200, 300, 400])
  parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                      help="config overrides, e.g. inversion.learning_rate=4e-3")
  parser.add_argument("--target", type=float, default=0.99)
  parser.add_argument("--workdir", default=None, help="where the runs go (default: a temporary folder)")
  args = parser.parse_args()
  # As the `jaxinv` command: huge pages (a restart) unless JAXINV_HOST_MEMORY says otherwise,
  # Eigen convolutions unless JAXINV_CPU_CONVOLUTIONS=ynnpack.
  host_memory.restart_with_huge_pages()
  jaxinv.cpu.enable(process_settings=False)  # the hand-made convolution forms
  print(f"Eigen convolutions: {cpu_convolutions.configure_from_environment()}, "
        f"host memory kept: {host_memory.configure_from_environment()}, "
        f"huge pages: {host_memory.huge_pages_on()}", flush=True)

  root = Path(args.workdir or tempfile.mkdtemp(prefix="jaxinv-ttt-"))
  rows, reached = [], None
  for steps in args.steps:
    config = (config_lib.load_config(args.config) if args.config.split(":")[0].endswith(".py")
              else config_lib.default_config(args.config))
    config.init_from = args.classifier
    config.inversion.steps = steps
    config.checkpoint.every = steps  # one checkpoint at the end, as a finished run has
    config_lib.apply_overrides(config, dict(item.split("=", 1) for item in args.set))
    summary = inversion.run(config, root / f"steps{steps}")
    ok = summary["target_accuracy_min_class"] >= args.target
    rows.append((steps, summary["train_wall_time_s"], summary["target_accuracy"],
                 summary["target_accuracy_min_class"], ok))
    print(json.dumps({"steps": steps, "train_wall_time_s": summary["train_wall_time_s"],
                      "target_accuracy_per_class": summary["target_accuracy_per_class"]}), flush=True)
    if ok and reached is None:
      reached = rows[-1]
  print(f"\noverrides: {' '.join(args.set) or '(none)'}; classifier {args.classifier}")
  print(f"{'steps':>6} {'train s':>8} {'target acc':>10} {'min class':>9} reached")
  for steps, seconds, acc, worst, ok in rows:
    print(f"{steps:6d} {seconds:8.1f} {acc:10.4f} {worst:9.3f} {'yes' if ok else 'no'}")
  if reached:
    print(f"time to ≥ {args.target:.0%} on every class: {reached[1]:.1f} s ({reached[0]} steps)")
  else:
    print(f"no run reached ≥ {args.target:.0%} on every class")


if __name__ == "__main__":
  main()
