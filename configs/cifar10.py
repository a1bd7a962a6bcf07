"""cifar10: classifier + inversion config.

Run (from the repository root):
  jaxinv train-classifier --config configs/cifar10.py --workdir /tmp/cifar10_classifier
  jaxinv invert --config configs/cifar10.py --workdir /tmp/cifar10_inversion \
      --config.init_from=/tmp/cifar10_classifier
  jaxinv sample --workdir /tmp/cifar10_inversion --num-per-class 10 --out /tmp/cifar10_samples.npz
The `tiny` variant (configs/cifar10.py:tiny) trains for a few steps on a few
hundred examples; it checks the plumbing, not the results.

Expected: not yet measured at scale (offline only 220 real images are available).
"""

from jaxinv.config import default_config


def get_config(arg=None):
  return default_config("cifar10", arg)
