"""jaxinv.cpu.convolutions: the XLA flag moves CPU convolutions off YNNPACK (checked in the
compiled program) and computes the same values; the user's XLA_FLAGS and a late call are
left alone; a bad setting is a clear error."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest

from jaxinv import cli
from jaxinv.cpu import convolutions as cpu_convolutions

# Runs in a fresh process (XLA reads its flags when the backend starts). Prints whether the
# compiled 3×3 convolution (classifier-sized: 28 px, 32 → 64 channels) is a YNNPACK
# fusion, and its value's sum and a few entries.
_PROBE = textwrap.dedent("""
    import json, sys
    from jaxinv.cpu import convolutions as cpu_convolutions
    added = cpu_convolutions.use_eigen_convolutions() if sys.argv[1] == "eigen" else False
    import jax, jax.numpy as jnp
    x = jax.random.normal(jax.random.key(0), (8, 28, 28, 32))
    k = jax.random.normal(jax.random.key(1), (3, 3, 32, 64))
    conv = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    hlo = conv.lower(x, k).compile().as_text()
    y = conv(x, k)
    print(json.dumps(dict(added=added, ynn="__ynn_fusion" in hlo, sum=float(y.sum()),
                          first=[float(v) for v in y[0, 0, 0, :4]])))
""")


def _probe(mode):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  env.pop("XLA_FLAGS", None)
  env.pop(cpu_convolutions.ENVIRONMENT_VARIABLE, None)
  out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                       env=env, timeout=300)
  assert out.returncode == 0, out.stderr
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not cpu_convolutions.flag_is_known(), reason="flag measured on jaxlib 0.10")
def test_flag_moves_convolutions_off_ynnpack_and_keeps_the_values():
  default, eigen = _probe("default"), _probe("eigen")
  assert not default["added"] and default["ynn"]  # jaxlib's own choice: YNNPACK
  assert eigen["added"] and not eigen["ynn"]
  assert eigen["sum"] == pytest.approx(default["sum"], rel=1e-4, abs=1e-2)
  assert eigen["first"] == pytest.approx(default["first"], rel=1e-4, abs=1e-4)


def test_users_xla_flags_and_unmeasured_jaxlib_are_left_alone(monkeypatch):
  users = f"--{cpu_convolutions.FLAG_NAME}=+eltwise"
  monkeypatch.setenv("XLA_FLAGS", users)
  assert cpu_convolutions.use_eigen_convolutions() is False
  assert os.environ["XLA_FLAGS"] == users
  monkeypatch.setenv("XLA_FLAGS", "")
  monkeypatch.setattr(cpu_convolutions, "MEASURED_JAXLIB", ("0.0.",))
  assert cpu_convolutions.use_eigen_convolutions() is False
  assert os.environ["XLA_FLAGS"] == ""


@pytest.mark.skipif(not cpu_convolutions.flag_is_known(), reason="flag measured on jaxlib 0.10")
def test_a_call_after_the_backend_started_warns_and_changes_nothing(monkeypatch):
  jax.devices()
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
  with pytest.warns(UserWarning, match="before the first JAX computation"):
    assert cpu_convolutions.use_eigen_convolutions() is False
  assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false"
  assert cpu_convolutions.use_eigen_convolutions(warn_if_late=False) is False


def test_environment_setting(monkeypatch, tmp_path, capsys):
  monkeypatch.setenv("XLA_FLAGS", "")
  monkeypatch.setenv(cpu_convolutions.ENVIRONMENT_VARIABLE, "ynnpack")
  assert cpu_convolutions.configure_from_environment() is False
  assert os.environ["XLA_FLAGS"] == ""
  monkeypatch.setenv(cpu_convolutions.ENVIRONMENT_VARIABLE, "onednn")
  with pytest.raises(ValueError, match="JAXINV_CPU_CONVOLUTIONS='onednn' is not one of"):
    cpu_convolutions.configure_from_environment()
  code = cli.main(["sample", "--workdir", str(tmp_path), "--num-per-class", "1",
                   "--out", str(tmp_path / "out.npz")])
  assert code == 2
  assert "JAXINV_CPU_CONVOLUTIONS='onednn'" in capsys.readouterr().err


@pytest.mark.parametrize("flags,expected", [
    (cpu_convolutions.FLAG, True),
    (f"--xla_cpu_enable_fast_math=false {cpu_convolutions.FLAG}", True),
    (f"--{cpu_convolutions.FLAG_NAME}=+eltwise,-individual_convolution", True),
    (f"{cpu_convolutions.FLAG} --{cpu_convolutions.FLAG_NAME}=+eltwise", False),  # XLA takes the last
    (f"--{cpu_convolutions.FLAG_NAME}=-individual_dot", False),
    ("", False),
])
def test_eigen_convolutions_in_effect_reads_xla_flags(monkeypatch, flags, expected):
  monkeypatch.setattr(cpu_convolutions, "MEASURED_JAXLIB", ("",))  # any jaxlib counts as measured
  monkeypatch.setenv("XLA_FLAGS", flags)
  assert cpu_convolutions.eigen_convolutions_in_effect() is expected


def test_eigen_convolutions_are_not_assumed_on_an_unmeasured_jaxlib(monkeypatch):
  monkeypatch.setattr(cpu_convolutions, "MEASURED_JAXLIB", ("0.0.",))
  monkeypatch.setenv("XLA_FLAGS", cpu_convolutions.FLAG)
  assert cpu_convolutions.eigen_convolutions_in_effect() is False
