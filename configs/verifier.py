"""Verifier classifiers: trained on the same data as the classifier that is
inverted, but of another architecture and seed, to check generated images
independently (`jaxinv evaluate --verifier DIR`). Adversarial patterns that fool
the inverted classifier rarely fool a classifier with other blind spots.

The argument names the dataset, optionally with `,tiny`:
  jaxinv train-classifier --config configs/verifier.py:mnist --workdir /tmp/mnist_verifier
  jaxinv train-classifier --config configs/verifier.py:fashion_mnist --workdir /tmp/fashion_mnist_verifier
  jaxinv evaluate --workdir /tmp/mnist_inversion --verifier /tmp/mnist_verifier
Architecture: an MLP where the dataset's default classifier is the CNN (digits,
mnist, fashion_mnist); the CNN where it is the ResNet (svhn_cropped, cifar10).
Seed 1 (the default configs use seed 0).
"""

from jaxinv.config import default_config

# Dataset → (architecture, epochs). MLPs need more epochs than the CNN on the same data.
_VERIFIERS = {
    "digits": ("mlp", 40),
    "mnist": ("mlp", 5),
    "fashion_mnist": ("mlp", 10),
    "svhn_cropped": ("cnn", 10),
    "cifar10": ("cnn", 30),
}


def get_config(arg=None):
  dataset, _, variant = (arg or "").partition(",")
  if dataset not in _VERIFIERS:
    raise ValueError(f"configs/verifier.py needs the dataset as its argument, e.g. "
                     f"configs/verifier.py:mnist (or mnist,tiny); one of {sorted(_VERIFIERS)}, got {arg!r}.")
  config = default_config(dataset, variant or None)
  model, epochs = _VERIFIERS[dataset]
  config.classifier.model = model
  if variant != "tiny":
    config.classifier.epochs = epochs
  config.seed = 1
  return config
