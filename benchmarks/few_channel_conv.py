"""`fast_conv`'s few-channel, row-split and constant-channel forms on and off, whole steps
timed in the same process, alternating.

    python benchmarks/few_channel_conv.py [--form input|output|rows|matrix] [--batches 64 256] [--steps 10]
        [--models light]

--form input (default): the paper CNN's first convolution (1 input channel). Rows: the
classifier training step (kernel gradient of conv0 needed) and the inversion step of each
generator (frozen classifier: conv0's value and input gradient), with
`fast_conv.FEW_INPUT_CHANNELS = 1` (the default) and `0` (the blocked path of 2026-11-28).
--form output: the generators' image layer (3×3, width → 1 channel). Rows: the inversion
step of each generator with `fast_conv.FEW_OUTPUT_CHANNELS = 3` (the default) and `0`
(the blocked path before 2026-11-29).
--form rows: the transposed generators' K×K → H/2 layer. Rows: the inversion step of each
generator with `fast_conv.ROW_SPLIT_MIN_CHANNELS = 128` (the default: the paper generator's
257-channel layer takes the row split, the small one's 49 channels do not) and off (the padded
convolution for every layer, before 2026-11-29).
--form matrix: the transposed generators' K×K → H/2 layer with its hot-matrix channel as a
constant (`conv2d(..., constant_channels=1)`, the default: no input gradient computed for it)
and as a variable (the input gradient of all channels, before 2026-11-29).
"""

import argparse

import jax

import step_speed
import jaxinv.cpu
from jaxinv.cpu import fast_conv, layers


def _conv2d_without_constant_channels(*args, constant_channels=0, **kwargs):
  return fast_conv.conv2d(*args, **kwargs)


# --form: (module, name in it, the "off" value, column names of the default and the off form).
# Either is read when the step is traced (compiled here); "matrix" swaps the conv2d that
# layers.conv_transpose_subpixel calls.
FORMS = {"input": (fast_conv, "FEW_INPUT_CHANNELS", 0, "few-input", "blocked"),
         "output": (fast_conv, "FEW_OUTPUT_CHANNELS", 0, "few-output", "blocked"),
         "rows": (fast_conv, "ROW_SPLIT_MIN_CHANNELS", 1 << 30, "row split", "padded"),
         "matrix": (layers, "conv2d", _conv2d_without_constant_channels, "constant", "variable")}


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--form", choices=list(FORMS), default="input")
  step_speed.add_ab_arguments(parser, models_default=["light"], models_nargs="*")
  args = parser.parse_args()
  jaxinv.cpu.enable()  # the CPU machinery the jaxinv command runs with (inert off a CPU)
  module, knob, off, new_label, old_label = FORMS[args.form]
  print(f"device: {jax.devices()[0].device_kind}, jax {jax.__version__}")
  print(f"{'step':<22} {'batch':>5} {new_label + ' ms':>14} {old_label + ' ms':>14} {'ratio':>6}")
  jobs = [("classifier", None, b) for b in args.batches] if args.form == "input" else []
  jobs += [("inversion", m, b) for m in args.models for b in args.batches]
  default = getattr(module, knob)
  for kind, preset, batch in jobs:
    runs = {}
    for value in (default, off):
      setattr(module, knob, value)
      runs[value] = (step_speed.jax_classifier(batch) if kind == "classifier"
                     else step_speed.jax_inversion(preset, batch))[0]
    setattr(module, knob, default)
    medians = step_speed.alternating_medians(runs, args.rounds, args.steps)
    new, old = medians[default], medians[off]
    name = "classifier/paper_cnn" if kind == "classifier" else f"inversion/{preset}"
    print(f"{name:<22} {batch:5d} {new:14.1f} {old:14.1f} {old / new:6.2f}", flush=True)


if __name__ == "__main__":
  main()
