"""Run XLA:CPU's convolutions on its Eigen path instead of YNNPACK (faster for jaxinv's steps).

jaxlib 0.10 hands float32 CPU convolutions to YNNPACK; for jaxinv's small-image convolutions
XLA's Eigen path was faster in every whole step measured (docs/performance-cpu.md). XLA reads
its flags when the backend starts, so `use_eigen_convolutions()` appends its flag to
`XLA_FLAGS` only before that, leaves alone an `XLA_FLAGS` that already sets it and a jaxlib it
was not measured with (an unknown flag aborts XLA), and is called only by `jaxinv.cpu.enable()`
unless `JAXINV_CPU_CONVOLUTIONS=ynnpack`. GPUs and TPUs are not affected (a CPU-only flag).
"""

import os
import warnings

from jaxinv.cpu.host_memory import backend_started

ENVIRONMENT_VARIABLE = "JAXINV_CPU_CONVOLUTIONS"
MODES = ("eigen", "ynnpack")
FLAG_NAME = "xla_cpu_experimental_ynn_fusion_type"
FLAG = f"--{FLAG_NAME}=-individual_convolution"  # YNNPACK keeps its other fusions (dots)
MEASURED_JAXLIB = ("0.10.",)  # the flag is experimental: other versions may not know it


def flag_is_known() -> bool:
  from jaxlib import version
  return version.__version__.startswith(MEASURED_JAXLIB)


def eigen_convolutions_in_effect() -> bool:
  """Whether XLA_FLAGS (as this process sees it now) sends convolutions to Eigen on a
  measured jaxlib: FLAG_NAME set with `-individual_convolution` in its value. Forms that
  were chosen for YNNPACK's speeds (`fast_conv`'s padded-and-cropped convolution) ask this
  at trace time."""
  if not flag_is_known():
    return False
  values = [token.split("=", 1)[1] for token in os.environ.get("XLA_FLAGS", "").split()
            if token.startswith(f"--{FLAG_NAME}=")]
  return bool(values) and "-individual_convolution" in values[-1].split(",")


def use_eigen_convolutions(warn_if_late: bool = True) -> bool:
  """Appends FLAG to XLA_FLAGS (module docstring). Returns whether it did: not when
  XLA_FLAGS already names the flag (the user's choice stands), when this jaxlib was not
  measured, or (with a warning if `warn_if_late`) when JAX's backend has already started."""
  flags = os.environ.get("XLA_FLAGS", "")
  if FLAG_NAME in flags or not flag_is_known():
    return False
  if backend_started():
    if warn_if_late:
      warnings.warn("jaxinv.cpu.convolutions.use_eigen_convolutions() has no effect once JAX's "
                    "backend has started (XLA has read its flags); call it before the first "
                    "JAX computation or jax.devices().", stacklevel=2)
    return False
  os.environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
  return True


def configure_from_environment() -> bool:
  """`use_eigen_convolutions()` unless JAXINV_CPU_CONVOLUTIONS=ynnpack (unset or "eigen":
  Eigen); silent when JAX's backend has already started (`jaxinv.cli.main` called from a
  Python session)."""
  mode = os.environ.get(ENVIRONMENT_VARIABLE, "eigen").strip().lower()
  if mode not in MODES:
    raise ValueError(f"{ENVIRONMENT_VARIABLE}={os.environ[ENVIRONMENT_VARIABLE]!r} is not one of "
                     f"{MODES}; set it to eigen (the default) or ynnpack (jaxlib's own choice), "
                     "or unset it.")
  return use_eigen_convolutions(warn_if_late=False) if mode == "eigen" else False
