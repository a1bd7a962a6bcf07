from pathlib import Path

import pytest

from jaxinv import config as config_lib

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.py"))


def test_every_dataset_has_a_config_file():
  assert {p.stem for p in CONFIGS} == {"digits", "mnist", "fashion_mnist", "svhn", "cifar10"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
@pytest.mark.parametrize("variant", ["", ":tiny"])
def test_every_config_builds_and_validates(path, variant):
  config = config_lib.load_config(f"{path}{variant}")
  config_lib.validate(config)
  assert config.inversion.steps > 0
  if variant:
    assert config.inversion.steps <= 50 and config.classifier.epochs == 1
  doc = path.read_text()
  assert "jaxinv train-classifier" in doc and "jaxinv invert" in doc and "Expected" in doc


def test_overrides_parse_with_the_field_type():
  config = config_lib.default_config("digits")
  config_lib.apply_overrides(config, {"inversion.steps": "7", "inversion.alpha": "0.5",
                                      "generator.mode": "label", "init_from": "/x"})
  assert config.inversion.steps == 7 and config.inversion.alpha == 0.5
  assert config.generator.mode == "label" and config.init_from == "/x"


@pytest.mark.parametrize("overrides,match", [
    ({"inversion.stepz": "3"}, "Unknown config field 'inversion.stepz'"),
    ({"nosection.steps": "3"}, "'nosection' is not a section"),
    ({"inversion.steps": "many"}, "Bad value for config field 'inversion.steps'"),
])
def test_bad_overrides_name_the_field(overrides, match):
  with pytest.raises((KeyError, ValueError), match=match):
    config_lib.apply_overrides(config_lib.default_config("digits"), overrides)


@pytest.mark.parametrize("field,value,match", [
    ("dataset", "imagenet", "dataset='imagenet'"),
    ("classifier.model", "vit", "classifier.model"),
    ("generator.mode", "psychic", "generator.mode"),
    ("generator.hot_pattern", "star", "generator.hot_pattern"),
    ("generator.upsample", "magic", "generator.upsample"),
    ("generator.dropout_rate", "1.5", "generator.dropout_rate"),
    ("inversion.batch_size", "1", "inversion.batch_size"),
    ("inversion.steps", "0", "inversion.steps"),
    ("inversion.learning_rate", "-1", "inversion.learning_rate"),
    ("inversion.gamma", "-0.1", "inversion.gamma"),
    ("num_devices", "-2", "num_devices"),
])
def test_invalid_values_are_named(field, value, match):
  config = config_lib.default_config("digits")
  config_lib.apply_overrides(config, {field: value})
  with pytest.raises(ValueError, match=match):
    config_lib.validate(config)


def test_unknown_variant_and_missing_file():
  with pytest.raises(ValueError, match="variant"):
    config_lib.default_config("digits", "huge")
  with pytest.raises(FileNotFoundError, match="not found"):
    config_lib.load_config("configs/nope.py")
