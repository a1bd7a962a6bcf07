"""Where a jaxinv step's CPU time goes, and how close to the matrix product it could get.

    python benchmarks/step_profile.py [--model paper] [--batch 64] [--steps 5] [--top 12]

Runs one step of `benchmarks/step_speed.py` (classifier or inversion with a named generator;
Eigen convolutions and, through a restart, the malloc tunables, as the `jaxinv` command runs
them), times --steps steps, then traces --steps more with `jax.profiler` and sums the XLA
ops' events per op kind over all threads. Products are the ops that run matrix products
(`dot`, `dot_general`, YNNPACK's `ynn_fusion`s of them, `convolution`); XLA:CPU's Eigen
convolution thunks leave no event here, so their time is in "untraced" (CPU seconds from
`getrusage` minus the named events, runtime overhead included). Everything else named —
elementwise fusions, copies, slices, concatenations, pads, reductions — is the step's
non-product work.

The bound it prints: if every FLOP of the step (the analytic count, as step_speed.py's)
ran at the 4096³ matrix product's rate measured in the same run, and the non-product work
kept its traced CPU time spread over all cores, the step would take
flops / rate + non_product_cpu / cores; the achieved share of the matrix product's rate
cannot exceed flops / rate over that time. The tracer costs time per event: the paper step
ran as fast traced as untraced (407 against 411 ms at batch 64); the small generator's
step did in one run and ran 3× slower (112 against 37 ms) in two others, so the bound is
printed only when the traced steps
are within TRUSTED_SLOWDOWN of the untraced median. Linux only.
"""

import argparse
import collections
import glob
import os
import re
import resource
import tempfile
import time

import jax
from jax.profiler import ProfileData

import step_speed
import jaxinv.cpu
from jaxinv.cpu import convolutions as cpu_convolutions, host_memory

# Traced steps slower than this × the untraced median make the op times untrustworthy.
TRUSTED_SLOWDOWN = 1.15
PRODUCT_OPS = re.compile(r"^(dot|dot_general|ynn_fusion|convolution|conv_general_dilated)$")  # kinds: ".N" cut


def _cpu_seconds() -> float:
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


def traced_op_seconds(run, steps: int) -> tuple[collections.Counter, float, float]:
  """({op kind: CPU seconds per step, summed over threads}, CPU seconds per step, wall
  seconds per step), over `steps` steps under the profiler (which slows them a little)."""
  with tempfile.TemporaryDirectory() as directory:
    with jax.profiler.trace(directory):
      cpu_before, wall_before = _cpu_seconds(), time.perf_counter()  # after the tracer started
      for _ in range(steps):
        jax.block_until_ready(run())
      cpu = (_cpu_seconds() - cpu_before) / steps
      wall = (time.perf_counter() - wall_before) / steps
    (path,) = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)
    planes = ProfileData.from_file(path).planes
  kinds = collections.Counter()
  for plane in planes:
    for line in plane.lines:
      if line.name == "python":
        continue
      for event in line.events:
        if "ThunkExecutor" in event.name or "Await" in event.name:
          continue  # waits and the executor's own span, not ops
        kinds[re.sub(r"\.\d+$", "", event.name)] += event.duration_ns / 1e9 / steps
  return kinds, cpu, wall


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="paper", choices=["classifier", *step_speed.PRESETS])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--top", type=int, default=12, help="non-product op kinds listed")
  args = parser.parse_args()
  host_memory.restart_with_huge_pages()
  cpu_convolutions.use_eigen_convolutions()
  jaxinv.cpu.enable(process_settings=False)  # the hand-made convolution forms
  rate = step_speed.jax_matmul_gflops() * 1e9
  if args.model == "classifier":
    run, *_ = step_speed.jax_classifier(args.batch)
    flops = step_speed.analytic_flops("classifier", None, args.batch)
  else:
    run, *_ = step_speed.jax_inversion(args.model, args.batch)
    flops = step_speed.analytic_flops("inversion", args.model, args.batch)
  step_s = step_speed.median_time(run, args.steps)
  kinds, cpu, wall = traced_op_seconds(run, args.steps)
  products = sum(s for kind, s in kinds.items() if PRODUCT_OPS.match(kind))
  other = {kind: s for kind, s in kinds.items() if not PRODUCT_OPS.match(kind)}
  non_product = sum(other.values())
  cores = os.cpu_count()
  bound_s = flops / rate + non_product / cores
  print(f"{args.model} batch {args.batch}: {step_s * 1e3:.1f} ms/step (median of {args.steps}), "
        f"{flops / step_s / 1e9:.1f} GFLOP/s = {100 * flops / step_s / rate:.0f} % of the matrix "
        f"product ({rate / 1e9:.0f} GFLOP/s, {cores} cores)")
  print(f"traced steps: {wall * 1e3:.1f} ms/step, CPU {cpu * 1e3:.1f} ms/step (all threads); named products "
        f"{products * 1e3:.1f}, non-product ops {non_product * 1e3:.1f} "
        f"({100 * non_product / cpu:.0f} % of the CPU time), untraced (Eigen convolutions, runtime) "
        f"{(cpu - products - non_product) * 1e3:.1f}")
  if wall > TRUSTED_SLOWDOWN * step_s:
    print(f"the profiler slowed the step {wall / step_s:.1f}× (many small ops: each event costs "
          f"time), so its op times say little about the untraced step: no bound printed")
    return
  print(f"bound: every FLOP at the matrix product's rate ({flops / rate * 1e3:.1f} ms) + non-product "
        f"ops over {cores} cores ({non_product / cores * 1e3:.1f} ms) = {bound_s * 1e3:.1f} ms, "
        f"at most {100 * flops / rate / bound_s:.0f} % of the matrix product")
  for kind, seconds in sorted(other.items(), key=lambda item: -item[1])[:args.top]:
    print(f"  {seconds * 1e3:8.2f} ms  {kind}")


if __name__ == "__main__":
  main()
