"""Verifier classifiers: trained on the same data as the classifier that is
inverted, but of another architecture and seed, to check generated images
independently (`jaxinv evaluate --verifier DIR`). Adversarial patterns that fool
the inverted classifier rarely fool a classifier with other blind spots.

The argument is DATASET[,FAMILY][,augmented][,tiny]:
  jaxinv train-classifier --config configs/verifier.py:mnist --workdir /tmp/mnist_verifier
  jaxinv train-classifier --config configs/verifier.py:mnist,cnn,augmented --workdir /tmp/mnist_cnn_judge
  jaxinv evaluate --workdir /tmp/mnist_inversion --verifier /tmp/mnist_verifier
FAMILY (mlp, cnn, resnet or airbench): by default an MLP where the dataset's default
classifier is the CNN (digits, mnist, fashion_mnist), the CNN where it is the ResNet or
airbench net (svhn_cropped, cifar10). `airbench` is configs/cifar10.py's narrow whitened
net and SGD recipe (without flips), a third family for grayscale data too:
  jaxinv train-classifier --config configs/verifier.py:mnist,airbench,augmented --workdir /tmp/mnist_airbench_judge
Seeds: 1 for the dataset's default family, else cnn 2, resnet 3, mlp 4, airbench 5 (the
default configs use 0), so two verifiers of a dataset are independent of each other too.
`augmented` trains on shifted (2 pixels) and noisy (std up to 0.5 in [-1, 1] units) copies:
such a verifier still recognises real images under small perturbations, so a low score on
generated images is theirs, not the verifier's brittleness (docs/faithful.md).
"""

from jaxinv.config import default_config

# Dataset → (default family, epochs per family). MLPs need more epochs than the CNN on the same data.
_VERIFIERS = {
    "digits": ("mlp", {"mlp": 40, "cnn": 10, "resnet": 10}),  # 8×8: too small for airbench's 3 pools
    "mnist": ("mlp", {"mlp": 5, "cnn": 3, "resnet": 3, "airbench": 3}),
    "fashion_mnist": ("mlp", {"mlp": 10, "cnn": 5, "resnet": 5, "airbench": 5}),
    "svhn_cropped": ("cnn", {"mlp": 20, "cnn": 10, "resnet": 10, "airbench": 8}),
    "cifar10": ("cnn", {"mlp": 30, "cnn": 30, "resnet": 10, "airbench": 8}),
}
_SEEDS = {"mlp": 4, "cnn": 2, "resnet": 3, "airbench": 5}
# The airbench family's net and recipe (configs/cifar10.py without its flips and test-time
# augmentation: not every dataset is left–right symmetric).
_AIRBENCH = {"widths": (32, 128, 128), "conv_impl": "xla", "batch_size": 256, "optimizer": "nesterov",
             "learning_rate": 0.375, "weight_decay": 1.33e-3, "momentum": 0.85, "bias_lr_scale": 64.0,
             "whiten_bias_fraction": 0.3, "lookahead_period": 5, "label_smoothing": 0.2}
_AUGMENTATION = {"translate": 2, "noise_std": 0.5}


def get_config(arg=None):
  dataset, *options = (arg or "").split(",")
  if dataset not in _VERIFIERS:
    raise ValueError(f"configs/verifier.py needs the dataset as its argument, e.g. "
                     f"configs/verifier.py:mnist (or mnist,cnn,augmented or mnist,tiny); one of "
                     f"{sorted(_VERIFIERS)}, got {arg!r}.")
  unknown = set(options) - {*_SEEDS, "augmented", "tiny"}
  families = [o for o in options if o in _SEEDS]
  if unknown or len(families) > 1:
    raise ValueError(f"configs/verifier.py:{arg}: options are one family of {sorted(_SEEDS)}, "
                     f"'augmented' and 'tiny'; got {options}.")
  default_family, epochs = _VERIFIERS[dataset]
  family = families[0] if families else default_family
  if family not in epochs:
    raise ValueError(f"configs/verifier.py:{arg}: the {family} family does not fit {dataset}'s images "
                     f"(airbench pools three times: it needs at least 16×16); choose one of {sorted(epochs)}.")
  tiny = "tiny" in options
  config = default_config(dataset, "tiny" if tiny else None)
  config.classifier.model = family
  if not tiny:
    config.classifier.epochs = epochs[family]
  if family == "airbench":
    for field, value in _AIRBENCH.items():
      if not (tiny and field in ("widths", "batch_size")):
        config.classifier[field] = value
    if tiny:
      config.classifier.widths = (8, 16, 16)
  if "augmented" in options:
    for field, value in _AUGMENTATION.items():
      config.classifier[field] = value
  # The default family keeps seed 1 (so verifiers trained before families existed are unchanged).
  config.seed = 1 if family == default_family else _SEEDS[family]
  return config
