"""Mixed precision: models compute in bfloat16 with float32 parameters, optimizer state,
losses and metrics; a bad or unsupported compute dtype is a clear error before any compile."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinv import config as config_lib
from jaxinv.models import classifiers
from jaxinv.models.generator import ConditionedGenerator
from jaxinv.runs import classifier as classifier_run

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_bf16_generator_makes_finite_float32_images_from_float32_parameters(upsample):
  gen = ConditionedGenerator(num_classes=4, image_shape=(8, 8, 1), width=4, latent_dim=3, embed_dim=3,
                             upsample=upsample, dtype=jnp.bfloat16)
  z, p, y = jnp.ones((2, 3)), jnp.full((2, 4), 0.25), jnp.arange(2)
  variables = gen.init(jax.random.key(0), z, p, y)
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  images = gen.apply(variables, z, p, y)
  assert images.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(images)))
  # The convolutions really ran in bfloat16.
  assert "bf16" in str(jax.make_jaxpr(lambda v: gen.apply(v, z, p, y))(variables))


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet"])
def test_bf16_classifiers_return_float32_logits_and_features(name):
  shape = (1, 32, 32, 3) if name == "resnet" else (1, 28, 28, 1)
  model = classifiers.build_classifier(name, 10, dtype=jnp.bfloat16)
  variables = model.init(jax.random.key(0), jnp.zeros(shape))
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  logits, aux = model.apply(variables, jnp.ones((2, *shape[1:])))
  assert logits.dtype == jnp.float32 and aux["penultimate"].dtype == jnp.float32


def test_tiny_classifier_trains_in_bfloat16(tmp_path):
  config = config_lib.load_config(str(REPO / "configs" / "digits.py:tiny"))
  config.compute_dtype = "bfloat16"
  config.classifier.steps = 6
  config.classifier.log_every = 2
  summary = classifier_run.run(config, tmp_path)
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  losses = [line["loss"] for line in lines if "loss" in line]
  assert losses and all(np.isfinite(losses)), lines
  assert 0.0 <= summary["test_accuracy"] <= 1.0
  _, variables, saved, _ = classifier_run.restore(tmp_path)
  assert saved.compute_dtype == "bfloat16"
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}


@pytest.mark.parametrize("value,message", [
    ("float64", "compute_dtype='float64': one of ('float32', 'bfloat16', 'float16')"),
    ("half", "compute_dtype='half': one of"),
])
def test_a_bad_compute_dtype_is_named(value, message):
  config = config_lib.default_config("digits")
  config.compute_dtype = value
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    config_lib.validate(config)


def test_float16_is_refused_off_a_gpu(monkeypatch):
  config = config_lib.default_config("digits")
  config.compute_dtype = "float16"
  monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
  with pytest.raises(ValueError, match="float16 runs on GPUs only"):
    config_lib.validate(config)
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  config_lib.validate(config)
  assert config_lib.compute_dtype(config) == jnp.float16
  config.compute_dtype = "float32"
  assert config_lib.compute_dtype(config) is None
