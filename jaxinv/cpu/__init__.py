"""jaxinv's CPU speed machinery, behind one switch (docs/performance-cpu.md).

On a CPU backend jaxinv's training steps run faster with three things XLA:CPU does not do
by itself: hand-made convolution forms (`fast_conv`, `layers`), XLA's Eigen convolutions
instead of YNNPACK (`convolutions`, one XLA flag) and glibc malloc settings (`host_memory`).

The switch is off in a library session: importing jaxinv sets no flag, variable or
malloc option, and models with `conv_impl="auto"` use Flax's own `nn.Conv` /
`nn.ConvTranspose`. `enable()` turns it on (the `jaxinv` command does, for the length of
each command). On a GPU or TPU backend it is inert: "auto" still means Flax's own layers,
and the flags and malloc settings are CPU-only and not applied.
"""

import contextlib
import os

ENVIRONMENT_VARIABLE = "JAXINV_CPU"  # "off": the jaxinv command leaves all of this off
_on = False


def wanted_by_command() -> bool:
  """Whether the `jaxinv` command turns the switch on: unless JAXINV_CPU=off (on/off only)."""
  value = os.environ.get(ENVIRONMENT_VARIABLE, "on").strip().lower()
  if value not in ("on", "off"):
    raise ValueError(f"{ENVIRONMENT_VARIABLE}={os.environ[ENVIRONMENT_VARIABLE]!r} is not on or off; "
                     "unset it (on) or set off to run with Flax's layers and XLA's settings.")
  return value == "on"


def enabled() -> bool:
  """Whether the switch is on (the hand-made forms also need a CPU backend: `fast_conv.resolve_impl`)."""
  return _on


def enable(process_settings: bool = True) -> None:
  """Turns the switch on. With `process_settings`, and when JAX's backend will be the CPU and
  has not started yet, also appends the Eigen flag to XLA_FLAGS (unless
  JAXINV_CPU_CONVOLUTIONS=ynnpack) and applies JAXINV_HOST_MEMORY=keep: both only take
  effect before the first JAX computation, and later are silently skipped. The huge-page
  restart (`host_memory.restart_with_huge_pages`) replaces the process, so only the `jaxinv`
  command's entry point makes it. Raises ValueError for a bad JAXINV_* setting."""
  global _on
  from jaxinv.cpu import convolutions, host_memory
  if process_settings and host_memory.runs_on_host():
    convolutions.configure_from_environment()
    host_memory.configure_from_environment()
  _on = True


def disable() -> None:
  """Turns the switch off: "auto" models trace with Flax's own layers again. XLA flags
  and malloc settings already in effect stay (XLA and glibc read them once)."""
  global _on
  _on = False


@contextlib.contextmanager
def switched(on: bool = True):
  """The switch set to `on` inside the block (model forms only, no process settings), and
  back to what it was after. Steps traced inside keep their forms once compiled."""
  global _on
  before, _on = _on, on
  try:
    yield
  finally:
    _on = before
