"""The airbench-style CIFAR-10 classifier: its model, training options and tiny config."""

import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxinv import cli, losses, steps, transforms
from jaxinv import config as config_lib
from jaxinv.models import classifiers

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_patch_whitening_kernel_whitens_patches():
  rng = np.random.default_rng(0)
  # Correlated images: smooth noise, so neighbouring pixels and channels covary.
  noise = rng.normal(size=(200, 17, 17, 3))
  images = (noise[:, :-1, :-1] + noise[:, 1:, 1:] + noise[:, :-1, 1:] @ np.diag([1, 2, 3]))
  kernel = classifiers.patch_whitening_kernel(images, 24)
  assert kernel.shape == (2, 2, 3, 24)
  out = jax.lax.conv_general_dilated(jnp.asarray(images, jnp.float32), kernel, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
  half = np.asarray(out[..., :12]).reshape(-1, 12)
  covariance = np.cov(half, rowvar=False)
  np.testing.assert_allclose(covariance, np.eye(12), atol=0.02)
  np.testing.assert_array_equal(kernel[..., 12:], -kernel[..., :12])


def test_airbench_model_returns_logits_and_penultimate_features():
  model = classifiers.build_classifier("airbench", 10, widths=(8, 16, 16), conv_impl="xla")
  x = jnp.zeros((2, 32, 32, 3))
  variables = model.init(jax.random.key(0), x)
  assert variables["params"]["whiten"]["kernel"].shape == (2, 2, 3, 24)
  (logits, aux), _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
  assert logits.shape == (2, 10) and aux["penultimate"].shape == (2, 16)


def test_airbench_verifier_family_trains_on_grayscale_mnist(tmp_path):
  """A third verifier family for grayscale data: its whitening layer takes all 8 directions
  of a 2×2×1 patch (the RGB default of 24 would not fit), trained end to end."""
  model = classifiers.build_classifier("airbench", 10, widths=(8, 16, 16), conv_impl="xla")
  variables = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  assert variables["params"]["whiten"]["kernel"].shape == (2, 2, 1, 8)
  verifier = REPO / "configs" / "verifier.py"
  config = config_lib.load_config(f"{verifier}:mnist,airbench,augmented")
  config_lib.validate(config)
  assert (config.classifier.model, config.classifier.optimizer, config.seed) == ("airbench", "nesterov", 5)
  assert not config.classifier.flip and config.classifier.noise_std == 0.5
  with pytest.raises(ValueError, match="at least 16"):
    config_lib.load_config(f"{verifier}:digits,airbench")
  workdir = tmp_path / "judge"
  assert cli.main(["train-classifier", "--config", f"{verifier}:mnist,airbench,tiny",
                   "--workdir", str(workdir), "--config.max_train_examples=256"]) == 0
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["model"] == "airbench" and 0.0 <= summary["test_accuracy"] <= 1.0


def test_smoothed_cross_entropy_matches_optax():
  logits = jnp.array([2.0, -1.0, 0.5, 0.0])
  ours = losses.smoothed_cross_entropy(logits, 2, 0.2)
  target = optax.smooth_labels(jax.nn.one_hot(2, 4), 0.2)
  np.testing.assert_allclose(ours, optax.softmax_cross_entropy(logits, target), rtol=1e-6)
  np.testing.assert_allclose(losses.smoothed_cross_entropy(logits, 2, 0.0),
                             losses.cross_entropy(logits, 2), rtol=1e-6)


def test_augmentation_shifts_and_flips_each_image():
  assert transforms.make_augmentation() is None  # off: the step is the plain one
  images = jnp.arange(4 * 6 * 6 * 1, dtype=jnp.float32).reshape(4, 6, 6, 1)
  flip = transforms.make_augmentation(flip=True)(images, jax.random.key(0))
  for original, out in zip(images, flip):
    assert jnp.array_equal(out, original) or jnp.array_equal(out, original[:, ::-1])
  shifted = transforms.make_augmentation(translate=2)(images, jax.random.key(1))
  assert shifted.shape == images.shape
  # Every output is a window of the reflection-padded image.
  padded = np.pad(np.asarray(images), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  for p, out in zip(padded, np.asarray(shifted)):
    assert any(np.array_equal(p[i:i + 6, j:j + 6], out) for i in range(5) for j in range(5))


def test_options_off_leave_the_classifier_step_unchanged():
  model = classifiers.build_classifier("cnn", 10)
  tx = optax.adamw(1e-3)
  x = jax.random.normal(jax.random.key(0), (8, 28, 28, 1))
  batch = {"image": x, "label": jnp.arange(8) % 10}
  state = steps.init_train_state(model.init(jax.random.key(1), x), tx)
  plain, _ = jax.jit(steps.make_classifier_step(model, tx))(state, batch, jax.random.key(2))
  off, _ = jax.jit(steps.make_classifier_step(model, tx, label_smoothing=0.0, augment=None))(
      state, batch, jax.random.key(2))
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(off)):
    np.testing.assert_array_equal(a, b)


def test_cifar10_config_validates_and_new_options_default_off():
  full = config_lib.load_config(str(REPO / "configs" / "cifar10.py"))
  config_lib.validate(full)
  assert full.classifier.model == "airbench" and full.classifier.label_smoothing == 0.2
  plain = config_lib.default_config("mnist")
  assert (plain.classifier.label_smoothing, plain.classifier.flip, plain.classifier.translate,
          plain.classifier.ema_decay, plain.classifier.test_flips) == (0.0, False, 0, 0.0, False)
  plain.classifier.widths = (8, 8, 8)
  with pytest.raises(ValueError, match="classifier.widths.*airbench"):
    config_lib.validate(plain)


def test_tiny_cifar10_classifier_from_the_jpeg_copy(tmp_path):
  data_dir = pathlib.Path(os.environ["JAXINV_DATA_DIR"])
  if not (data_dir / "cifar10_jpeg").is_dir():
    pytest.skip(f"no CIFAR-10 JPEG copy in {data_dir}")
  workdir = tmp_path / "cls"
  code = cli.main(["train-classifier", "--config", str(REPO / "configs" / "cifar10.py:tiny"),
                   "--workdir", str(workdir), "--config.max_train_examples=256"])
  assert code == 0
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["data_source"] == "CIFAR-10 (JPEG copy)"
  assert summary["model"] == "airbench" and summary["train_examples"] == 256
  assert summary["class_names"][0] == "airplane"
  assert 0.0 <= summary["test_accuracy"] <= 1.0


def test_weight_ema_is_kept_in_the_optimiser_state():
  from jaxinv.runs import classifier

  config = config_lib.default_config("digits")
  config.classifier.ema_decay = 0.5
  tx = classifier.make_optimizer(config, 10)
  params = {"w": jnp.array([1.0, -2.0])}
  opt_state = tx.init(params)
  expected = params["w"]
  for _ in range(3):
    updates, opt_state = tx.update({"w": jnp.array([0.3, 0.1])}, opt_state, params)
    params = optax.apply_updates(params, updates)
    expected = 0.5 * expected + 0.5 * params["w"]
  np.testing.assert_allclose(classifier.ema_params(opt_state)["w"], expected, rtol=1e-6)
  # Off (the default): the plain AdamW state, as before.
  config.classifier.ema_decay = 0.0
  state = classifier.make_optimizer(config, 10).init(params)
  assert not any(isinstance(s, classifier.EmaState) for s in state)


def test_noise_augmentation_draws_a_level_per_image_and_keeps_the_range():
  images = jnp.zeros((64, 8, 8, 1))
  noisy = transforms.make_augmentation(noise_std=0.5)(images, jax.random.key(0))
  stds = np.asarray(noisy).reshape(64, -1).std(axis=1)
  assert np.abs(noisy).max() <= 1.0
  assert stds.min() < 0.15 and stds.max() > 0.35 and stds.max() < 0.6  # levels spread over [0, 0.5]
  # Noise leaves the shifts and flips of the same key unchanged.
  ramp = jnp.arange(64 * 8 * 8, dtype=jnp.float32).reshape(64, 8, 8, 1) / 4096 - 0.5
  plain = transforms.make_augmentation(flip=True, translate=1)(ramp, jax.random.key(3))
  both = transforms.make_augmentation(flip=True, translate=1, noise_std=1e-6)(ramp, jax.random.key(3))
  np.testing.assert_allclose(both, plain, atol=1e-4)
