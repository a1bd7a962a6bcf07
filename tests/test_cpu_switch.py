"""jaxinv.cpu's switch: off in a library session (Flax's own convolution layers, no process
settings at import or model building), on for the hand-made forms only on a CPU backend."""

import json
import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

import jaxinv.cpu
from jaxinv.cpu import layers as cpu_layers
from jaxinv.models import classifiers
from jaxinv.models.generator import ConditionedGenerator

HAND_MADE = (cpu_layers.Conv, cpu_layers.UpsampleConv, cpu_layers.SubPixelConvTranspose)
FLAX_OWN = (nn.Conv, nn.ConvTranspose)
# fast_conv's custom-derivative convolutions, as they appear in a jaxpr.
CUSTOM_FORMS = ("custom_vjp", "name=_blocked_conv", "name=_few_channel_conv")


def _models():
  kwargs = dict(num_classes=4, image_shape=(8, 8, 1), width=4, latent_dim=3, embed_dim=3)
  return {"transpose": ConditionedGenerator(**kwargs, upsample="transpose"),
          "resize": ConditionedGenerator(**kwargs, upsample="resize"),
          "cnn": classifiers.PaperCNN(4, channels=(4, 4), dense_width=8)}


def _inputs(name):
  if name == "cnn":
    return (jnp.zeros((2, 8, 8, 1)),)
  return jnp.zeros((2, 3)), jnp.full((2, 4), 0.25), jnp.zeros((2,), jnp.int32)


def _convolution_modules_and_jaxpr(name, model):
  """The types of the convolution modules the model runs, and the jaxpr of its gradient."""
  seen = set()

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, HAND_MADE + FLAX_OWN):
      seen.add(type(context.module))
    return next_fun(*args, **kwargs)

  inputs = _inputs(name)
  with nn.intercept_methods(record):
    variables = model.init(jax.random.key(0), *inputs)
  loss = lambda params: jnp.sum(model.apply({**variables, "params": params}, *inputs)[0])
  jaxpr = str(jax.make_jaxpr(jax.grad(loss))(variables["params"]))
  return seen, jaxpr


@pytest.mark.parametrize("name", ["transpose", "resize", "cnn"])
def test_switched_off_the_models_use_flax_convolutions(name):
  assert not jaxinv.cpu.enabled()  # the library default
  seen, jaxpr = _convolution_modules_and_jaxpr(name, _models()[name])
  assert seen and seen <= set(FLAX_OWN), seen
  assert "conv_general_dilated" in jaxpr
  assert not any(form in jaxpr for form in CUSTOM_FORMS)


@pytest.mark.parametrize("name", ["transpose", "resize", "cnn"])
def test_switched_on_a_non_cpu_backend_still_uses_flax_convolutions(name, cpu_forms, monkeypatch):
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  seen, jaxpr = _convolution_modules_and_jaxpr(name, _models()[name])
  assert seen and seen <= set(FLAX_OWN), seen
  assert not any(form in jaxpr for form in CUSTOM_FORMS)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the hand-made forms are CPU-only")
@pytest.mark.parametrize("name", ["transpose", "resize", "cnn"])
def test_switched_on_a_cpu_uses_the_hand_made_forms(name, cpu_forms):
  seen, _ = _convolution_modules_and_jaxpr(name, _models()[name])
  assert seen & set(HAND_MADE), seen


def test_the_switch_parameters_are_the_same_either_way():
  """Checkpoints load whichever way the switch was: same names and shapes."""
  for name, model in _models().items():
    off = model.init(jax.random.key(0), *_inputs(name))
    with jaxinv.cpu.switched(True):
      on = model.init(jax.random.key(0), *_inputs(name))
    assert jax.tree.map(jnp.shape, off) == jax.tree.map(jnp.shape, on), name


_IMPORT_PROBE = textwrap.dedent("""
    import json, os, sys
    before = dict(os.environ)
    import jaxinv, jaxinv.cli, jaxinv.config, jaxinv.cpu, jaxinv.runs.classifier
    import jax, jax.numpy as jnp
    from jaxinv.models import classifiers, generator
    g = generator.ConditionedGenerator(num_classes=4, image_shape=(8, 8, 1), width=4, latent_dim=3,
                                       embed_dim=3, upsample="transpose")
    g.init(jax.random.key(0), jnp.zeros((2, 3)), jnp.full((2, 4), 0.25), jnp.zeros((2,), jnp.int32))
    classifiers.PaperCNN(4).init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    after_models = dict(os.environ)
    if sys.argv[1] == "enable":
      jaxinv.cpu.enable()
    print(json.dumps(dict(same=before == after_models, enabled=jaxinv.cpu.enabled(),
                          xla_flags=os.environ.get("XLA_FLAGS", ""))))
""")


def _probe(mode, platforms):
  env = {**os.environ, "JAX_PLATFORMS": platforms, "XLA_FLAGS": ""}
  out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, mode], capture_output=True, text=True,
                       env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_and_building_models_change_nothing_process_wide():
  result = _probe("none", "cpu")
  assert result == {"same": True, "enabled": False, "xla_flags": ""}


def test_enable_after_the_backend_started_or_off_a_cpu_sets_no_flags():
  # The probe built models first (the backend started), so the Eigen flag cannot count any more.
  assert _probe("enable", "cpu") == {"same": True, "enabled": True, "xla_flags": ""}


def test_enable_before_the_backend_starts_adds_the_eigen_flag_on_a_cpu_only(monkeypatch):
  from jaxinv.cpu import convolutions, host_memory
  monkeypatch.setenv("XLA_FLAGS", "")
  monkeypatch.setattr(host_memory, "backend_started", lambda: False)
  monkeypatch.setattr(convolutions, "backend_started", lambda: False)
  monkeypatch.setattr(host_memory, "keep_freed_memory", lambda warn_if_late=True: False)
  monkeypatch.setattr(host_memory, "runs_on_host", lambda: False)  # e.g. a GPU or TPU plugin
  with jaxinv.cpu.switched(False):
    jaxinv.cpu.enable()
    assert os.environ["XLA_FLAGS"] == ""
    monkeypatch.setattr(host_memory, "runs_on_host", lambda: True)
    jaxinv.cpu.enable()
    assert os.environ["XLA_FLAGS"] == (convolutions.FLAG if convolutions.flag_is_known() else "")


def test_the_command_switches_on_for_its_length_only(tmp_path, monkeypatch, capsys):
  from jaxinv import cli
  SAMPLE = ["sample", "--num-per-class", "1", "--out", str(tmp_path / "out.npz"), "--workdir"]
  seen = []
  monkeypatch.setitem(cli._COMMANDS, "sample", lambda args, overrides: seen.append(jaxinv.cpu.enabled()))
  assert cli.main(SAMPLE + [str(tmp_path)]) == 0
  monkeypatch.setenv(jaxinv.cpu.ENVIRONMENT_VARIABLE, "off")
  assert cli.main(SAMPLE + [str(tmp_path)]) == 0
  assert seen == [True, False] and not jaxinv.cpu.enabled()
  monkeypatch.setenv(jaxinv.cpu.ENVIRONMENT_VARIABLE, "maybe")
  assert cli.main(SAMPLE + [str(tmp_path)]) == 2
  assert "JAXINV_CPU='maybe' is not on or off" in capsys.readouterr().err
