"""Table of invalid configs and inputs, each with the error it must give.

Config cases are built from a plain dict (as a JSON file or a hand-written
config would arrive), so they bypass ConfigDict's own type locks and reach
`validate`, which runs before anything compiles."""

import copy

import jax
import ml_collections
import numpy as np
import pytest

from jaxinv import cli, data, sampling
from jaxinv import config as config_lib
from jaxinv.models.generator import ConditionedGenerator

BASE = config_lib.default_config("digits", "tiny").to_dict()


def _with(path: str, value=None, delete: bool = False) -> ml_collections.ConfigDict:
  tree = copy.deepcopy(BASE)
  *parents, leaf = path.split(".")
  node = tree
  for name in parents:
    node = node[name]
  if delete:
    del node[leaf]
  else:
    node[leaf] = value
  return ml_collections.ConfigDict(tree)


CONFIG_CASES = [  # (field, value, expected text in the error)
    ("dataset", "imagenet", "dataset='imagenet': one of"),
    ("dataset", 3, "dataset=3: one of"),
    ("classifier.model", "vit", "classifier.model='vit': one of"),
    ("generator.mode", "psychic", "generator.mode='psychic': one of"),
    ("generator.hot_pattern", "star", "generator.hot_pattern='star': one of"),
    ("generator.upsample", "magic", "generator.upsample='magic': one of"),
    ("generator.conv_impl", "cudnn", "generator.conv_impl='cudnn': one of"),
    ("classifier.conv_impl", "cudnn", "classifier.conv_impl='cudnn': one of"),
    ("generator.dropout_rate", 1.5, "generator.dropout_rate=1.5: a rate in [0, 1)"),
    ("generator.accept_threshold", 1.0, "generator.accept_threshold=1.0: a probability in [0, 1)"),
    ("generator.accept_threshold", 0.7, "classifier_ensemble.workdirs=(): at least one classifier "
     "workdir when generator.accept_threshold > 0"),
    ("classifier.dropout_rate", -0.1, "classifier.dropout_rate=-0.1: a rate in [0, 1)"),
    ("inversion.batch_size", 1, "inversion.batch_size=1: at least 2"),
    ("inversion.batch_size", 0, "inversion.batch_size=0: a positive integer"),
    ("classifier.batch_size", -8, "classifier.batch_size=-8: a positive integer"),
    ("inversion.steps", 0, "inversion.steps=0: a positive integer"),
    ("classifier.epochs", 0, "classifier.epochs=0: a positive integer"),
    ("inversion.learning_rate", -1.0, "inversion.learning_rate=-1.0: a positive float"),
    ("classifier.learning_rate", 0.0, "classifier.learning_rate=0.0: a positive float"),
    ("inversion.adam_eps", 0.0, "inversion.adam_eps=0.0: a positive float"),
    ("generator.temperature", 0.0, "generator.temperature=0.0: a positive float"),
    ("inversion.kl_temperature", -1.0, "inversion.kl_temperature=-1.0: a positive float"),
    ("inversion.gamma", -0.1, "inversion.gamma=-0.1: a non-negative float"),
    ("inversion.alpha", -2.0, "inversion.alpha=-2.0: a non-negative float"),
    ("classifier.weight_decay", -1.0, "classifier.weight_decay=-1.0: a non-negative float"),
    ("num_devices", -2, "num_devices=-2: 0 (all devices) or a positive count"),
    ("max_train_examples", -5, "max_train_examples=-5: 0 (all) or a positive count"),
    ("max_test_examples", -1, "max_test_examples=-1: 0 (all) or a positive count"),
    ("seed", -1, "seed=-1: a non-negative integer"),
    ("checkpoint.every", 0, "checkpoint.every=0: a positive integer"),
    ("checkpoint.keep", 0, "checkpoint.keep=0: a positive integer"),
    ("generator.width", 0, "generator.width=0: a positive integer"),
    ("generator.latent_dim", -3, "generator.latent_dim=-3: a positive integer"),
    ("inversion.eval_samples_per_class", 0, "inversion.eval_samples_per_class=0: a positive integer"),
    ("inversion.feature_layer", "", "inversion.feature_layer='': a feature name"),
    ("data_dir", "/no/such/folder", "data_dir='/no/such/folder': an existing folder"),
    ("init_from", "/no/such/run", "init_from='/no/such/run': the workdir of a finished"),
    ("inversion.steps", "100", "inversion.steps='100': must be of type int"),
    ("classifier.epochs", 2.5, "classifier.epochs=2.5: must be of type int"),
    ("inversion.alpha", "one", "inversion.alpha='one': must be of type float"),
    ("checkpoint.fallback_to_intact", "yes", "checkpoint.fallback_to_intact='yes': must be of type bool"),
    ("seed", True, "seed=True: must be of type int"),
    ("classifier.foo", 1, "classifier.foo: unknown field"),
    ("classifier.adversarial_norm", "l1", "classifier.adversarial_norm='l1': \"linf\" or \"l2\""),
    ("classifier.adversarial_epsilon", 3.0, "classifier.adversarial_epsilon=3.0: 0 (off), an L∞ radius"),
]


def test_an_l2_ball_may_be_wider_than_the_pixel_range():
  config = _with("classifier.adversarial_epsilon", 3.0)
  config.classifier.adversarial_norm = "l2"
  config_lib.validate(config)


@pytest.mark.parametrize("field,value,expected", CONFIG_CASES,
                         ids=[f"{f}={v!r}" for f, v, _ in CONFIG_CASES])
def test_invalid_config_is_named(field, value, expected):
  with pytest.raises(ValueError) as err:
    config_lib.validate(_with(field, value))
  assert expected in str(err.value)


def test_missing_field_is_named():
  with pytest.raises(ValueError, match="inversion.beta: missing"):
    config_lib.validate(_with("inversion.beta", delete=True))


def test_the_base_config_is_valid():  # so the table above fails for its own reason
  config_lib.validate(ml_collections.ConfigDict(copy.deepcopy(BASE)))


OVERRIDE_CASES = [
    ({"inversion.stepz": "3"}, KeyError, "Unknown config field 'inversion.stepz'"),
    ({"nosection.steps": "3"}, KeyError, "'nosection' is not a section"),
    ({"inversion.steps": "many"}, ValueError, "Bad value for config field 'inversion.steps'"),
    ({"checkpoint.fallback_to_intact": "maybe"}, ValueError, "expected true/false, got 'maybe'"),
    ({"inversion.alpha": "x1"}, ValueError, "Bad value for config field 'inversion.alpha'"),
]


@pytest.mark.parametrize("overrides,error,expected", OVERRIDE_CASES)
def test_bad_override_is_named(overrides, error, expected):
  with pytest.raises(error) as err:
    config_lib.apply_overrides(config_lib.default_config("digits"), overrides)
  assert expected in str(err.value)


def test_config_files_and_variants(tmp_path):
  with pytest.raises(ValueError, match="Unknown config variant 'huge'"):
    config_lib.default_config("digits", "huge")
  with pytest.raises(FileNotFoundError, match="Config file 'configs/nope.py' not found"):
    config_lib.load_config("configs/nope.py")
  empty = tmp_path / "empty.py"
  empty.write_text("x = 1\n")
  with pytest.raises(ValueError, match="defines no get_config"):
    config_lib.load_config(str(empty))


def test_data_inputs():
  with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
    data.load("imagenet", "train")
  with pytest.raises(ValueError, match="unknown split 'validation'"):
    data.load("digits", "validation")


def test_requested_labels_out_of_range():
  generator = ConditionedGenerator(num_classes=10, image_shape=(28, 28, 1), width=4)
  with pytest.raises(ValueError, match=r"Requested labels must lie in \[0, 9\]; got \[10, 12\]"):
    sampling.sample(generator, {}, np.array([0, 10, 12]), jax.random.key(0))


def test_generator_image_shape_and_latent():
  odd = ConditionedGenerator(num_classes=10, image_shape=(27, 27, 1), width=4)
  with pytest.raises(ValueError, match="square images of even size"):
    odd.init(jax.random.key(0), np.zeros((1, 100)), np.zeros((1, 10)), np.zeros((1,), np.int32))
  generator = ConditionedGenerator(num_classes=10, image_shape=(28, 28, 1), width=4)
  with pytest.raises(ValueError, match="z has 7 entries but generator.latent_dim is 100"):
    generator.init(jax.random.key(0), np.zeros((1, 7)), np.zeros((1, 10)), np.zeros((1,), np.int32))


@pytest.mark.parametrize("argv,expected", [
    (["sample", "--workdir", "/no/such/run", "--num-per-class", "0", "--out", "x.npz"],
     "--num-per-class must be positive"),
    (["sample", "--workdir", "/no/such/run", "--num-per-class", "2", "--out", "x.npz"],
     "/no/such/run has no config.json"),
])
def test_cli_inputs(argv, expected, capsys):
  try:
    code = cli.main(argv)
  except SystemExit as stop:  # argument errors exit through argparse/SystemExit
    code, message = 2, str(stop)
  else:
    message = capsys.readouterr().err
  assert code == 2 and expected in message
