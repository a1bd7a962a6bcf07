"""svhn_cropped: classifier + inversion config.

Run (from the repository root):
  jaxinv train-classifier --config configs/svhn.py --workdir /tmp/svhn_classifier
  jaxinv invert --config configs/svhn.py --workdir /tmp/svhn_inversion \
      --config.init_from=/tmp/svhn_classifier
  jaxinv sample --workdir /tmp/svhn_inversion --num-per-class 10 --out /tmp/svhn_samples.npz
The `tiny` variant (configs/svhn.py:tiny) trains for a few steps on a few
hundred examples; it checks the plumbing, not the results.

Expected: not yet measured (needs TensorFlow for TFDS's svhn_cropped builder).
"""

from jaxinv.config import default_config


def get_config(arg=None):
  return default_config("svhn_cropped", arg)
