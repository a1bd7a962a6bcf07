"""Page faults and kernel time per step: where host memory costs a jaxinv step on CPU.

    python benchmarks/step_faults.py [--model small] [--batch 64] [--steps 4]
        [--host-memory hugepages|keep|default]

Runs one step of `benchmarks/step_speed.py` (classifier or inversion with a named
generator) --steps times after 3 warm-ups, and prints the mean ms/step, the minor page
faults per step (`getrusage`; 4 KiB each), the transparent-huge-page faults per step
(`/proc/vmstat` thp_fault_alloc, machine-wide: run it alone; 2 MiB each) and the user and
kernel CPU seconds per step. `--host-memory` as in step_speed.py (hugepages, the `jaxinv`
command's default, restarts the script with glibc's tunables); XLA's convolutions run on
Eigen as the command runs them. Linux only.
"""

import argparse
import os
import resource
import time

import jax

import step_speed
import jaxinv.cpu
from jaxinv.cpu import convolutions as cpu_convolutions, host_memory


def _thp_faults() -> int:
  with open("/proc/vmstat") as vmstat:
    for line in vmstat:
      if line.startswith("thp_fault_alloc "):
        return int(line.split()[1])
  return 0


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="small", choices=["classifier", *step_speed.PRESETS])
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=4)
  parser.add_argument("--host-memory", choices=host_memory.MODES, default="hugepages")
  args = parser.parse_args()
  os.environ[host_memory.ENVIRONMENT_VARIABLE] = args.host_memory  # kept across the restart
  host_memory.restart_with_huge_pages()
  host_memory.configure_from_environment()
  cpu_convolutions.use_eigen_convolutions()
  jaxinv.cpu.enable(process_settings=False)  # the hand-made convolution forms
  if args.model == "classifier":
    run, *_ = step_speed.jax_classifier(args.batch)
  else:
    run, *_ = step_speed.jax_inversion(args.model, args.batch)
  for _ in range(3):
    jax.block_until_ready(run())
  before, thp_before, start = resource.getrusage(resource.RUSAGE_SELF), _thp_faults(), time.perf_counter()
  for _ in range(args.steps):
    jax.block_until_ready(run())
  seconds = (time.perf_counter() - start) / args.steps
  after, thp_after = resource.getrusage(resource.RUSAGE_SELF), _thp_faults()
  minor = (after.ru_minflt - before.ru_minflt) / args.steps
  huge = (thp_after - thp_before) / args.steps
  print(f"{args.model} batch {args.batch}, host memory {args.host_memory} (huge pages: "
        f"{host_memory.huge_pages_on()}): {seconds * 1e3:.1f} ms/step, minor faults/step {minor:.0f} "
        f"({minor * 4 / 1024:.0f} MiB), huge-page faults/step {huge:.0f} ({huge * 2:.0f} MiB), "
        f"user {(after.ru_utime - before.ru_utime) / args.steps:.3f} s/step, "
        f"kernel {(after.ru_stime - before.ru_stime) / args.steps:.3f} s/step")


if __name__ == "__main__":
  main()
