"""`fast_conv`'s few-channel forms on and off, whole steps timed in the same process,
alternating.

    python benchmarks/few_channel_conv.py [--form input|output] [--batches 64 256] [--steps 10]
        [--models light]

--form input (default): the paper CNN's first convolution (1 input channel). Rows: the
classifier training step (kernel gradient of conv0 needed) and the inversion step of each
generator (frozen classifier: conv0's value and input gradient), with
`fast_conv.FEW_INPUT_CHANNELS = 1` (the default) and `0` (the blocked path of session 11).
--form output: the generators' image layer (3×3, width → 1 channel). Rows: the inversion
step of each generator with `fast_conv.FEW_OUTPUT_CHANNELS = 3` (the default) and `0`
(the blocked path before session 14).
"""

import argparse

import jax

import step_speed
from jaxinv.models import fast_conv


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--form", choices=["input", "output"], default="input")
  step_speed.add_ab_arguments(parser, models_default=["light"], models_nargs="*")
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}")
  print(f"{'step':<22} {'batch':>5} {'few-' + args.form + ' ms':>14} {'blocked ms':>11} {'ratio':>6}")
  knob = {"input": "FEW_INPUT_CHANNELS", "output": "FEW_OUTPUT_CHANNELS"}[args.form]
  jobs = [("classifier", None, b) for b in args.batches] if args.form == "input" else []
  jobs += [("inversion", m, b) for m in args.models for b in args.batches]
  default = getattr(fast_conv, knob)
  for kind, preset, batch in jobs:
    runs = {}
    for few in (default, 0):
      setattr(fast_conv, knob, few)  # read when the step is traced (compiled here)
      runs[few] = (step_speed.jax_classifier(batch) if kind == "classifier"
                   else step_speed.jax_inversion(preset, batch))[0]
    setattr(fast_conv, knob, default)
    medians = step_speed.alternating_medians(runs, args.rounds, args.steps)
    new, old = medians[default], medians[0]
    name = "classifier/paper_cnn" if kind == "classifier" else f"inversion/{preset}"
    print(f"{name:<22} {batch:5d} {new:14.1f} {old:11.1f} {old / new:6.2f}", flush=True)


if __name__ == "__main__":
  main()
