from pathlib import Path

import pytest

from jaxinv import config as config_lib

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.py"))


def test_every_dataset_has_a_config_file():
  assert {p.stem for p in CONFIGS} == {"digits", "mnist", "fashion_mnist", "svhn", "cifar10",
                                      "mnist_sweep", "ood_mnist", "ood_fashion_mnist", "ood_cifar10", "verifier",
                                      "faithful", "reconstruct", "image_folder"}


def test_verifier_config_names_its_dataset():
  config = config_lib.load_config(f"{CONFIGS[0].parent / 'verifier.py'}:mnist,tiny")
  config_lib.validate(config)
  assert config.dataset == "mnist" and config.classifier.model == "mlp" and config.classifier.epochs == 1
  with pytest.raises(ValueError, match="needs the dataset"):
    config_lib.load_config(str(CONFIGS[0].parent / "verifier.py"))


def test_verifier_families_have_their_own_seeds_and_augmentation():
  path = CONFIGS[0].parent / "verifier.py"
  mlp = config_lib.load_config(f"{path}:mnist,augmented")
  cnn = config_lib.load_config(f"{path}:mnist,cnn,augmented")
  for config in (mlp, cnn):
    config_lib.validate(config)
    assert config.classifier.translate == 2 and config.classifier.noise_std == 0.5
  assert (mlp.classifier.model, cnn.classifier.model) == ("mlp", "cnn")
  assert len({mlp.seed, cnn.seed, config_lib.default_config("mnist").seed}) == 3
  plain = config_lib.load_config(f"{path}:mnist")
  assert plain.classifier.noise_std == 0.0 and plain.seed == 1  # unchanged without options
  with pytest.raises(ValueError, match="one family"):
    config_lib.load_config(f"{path}:mnist,cnn,mlp")
  with pytest.raises(ValueError, match="one family"):
    config_lib.load_config(f"{path}:mnist,noisy")


def test_reconstruct_config_names_dataset_model_and_size():
  path = CONFIGS[0].parent / "reconstruct.py"
  for arg in ("mnist,cnn,1000", "fashion_mnist,mlp,60000", "digits,mlp,200,tiny"):
    config = config_lib.load_config(f"{path}:{arg}")
    config_lib.validate(config)
    dataset, model, size = arg.split(",")[:3]
    assert (config.dataset, config.classifier.model, config.max_train_examples) == (dataset, model, int(size))
    assert config.generator.mode == "one_hot" and config.subset_selection == "stratified"
  config = config_lib.load_config(f"{path}:cifar10,cnn,1000")
  config_lib.validate(config)
  assert config.dataset == "cifar10" and config.max_train_examples == 1000
  assert "jaxinv reconstruct" in path.read_text()
  with pytest.raises(ValueError, match="DATASET,MODEL,TRAIN_IMAGES"):
    config_lib.load_config(f"{path}:mnist,cnn")


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.stem not in ("verifier", "faithful", "reconstruct",
                                                                 "image_folder")],
                         ids=lambda p: p.stem)
@pytest.mark.parametrize("variant", ["", ":tiny"])
def test_every_config_builds_and_validates(path, variant):
  config = config_lib.load_config(f"{path}{variant}")
  config_lib.validate(config)
  assert config.inversion.steps > 0
  if variant:
    assert config.inversion.steps <= 50 and config.classifier.epochs == 1
  doc = path.read_text()
  commands = (("jaxinv ood train", "jaxinv ood evaluate") if path.stem.startswith("ood_")
              else ("jaxinv train-classifier", "jaxinv invert"))
  assert all(command in doc for command in commands) and "Expected" in doc


def test_overrides_parse_with_the_field_type():
  config = config_lib.default_config("digits")
  config_lib.apply_overrides(config, {"inversion.steps": "7", "inversion.alpha": "0.5",
                                      "generator.mode": "label", "init_from": "/x"})
  assert config.inversion.steps == 7 and config.inversion.alpha == 0.5
  assert config.generator.mode == "label" and config.init_from == "/x"


def test_mnist_fast_variant_changes_only_the_inversion():
  path = CONFIGS[0].parent / "mnist.py"
  fast, default = config_lib.load_config(f"{path}:fast"), config_lib.load_config(str(path))
  config_lib.validate(fast)
  assert (fast.generator.width, fast.inversion.learning_rate, fast.inversion.batch_size,
          fast.inversion.steps) == (16, 1e-2, 32, 700)
  fast.generator.width, fast.inversion.learning_rate = default.generator.width, default.inversion.learning_rate
  fast.inversion.steps, fast.inversion.batch_size = default.inversion.steps, default.inversion.batch_size
  assert fast.to_dict() == default.to_dict()
