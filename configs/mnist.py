"""mnist: classifier + inversion config.

Run (from the repository root):
  jaxinv train-classifier --config configs/mnist.py --workdir /tmp/mnist_classifier
  jaxinv invert --config configs/mnist.py --workdir /tmp/mnist_inversion \
      --config.init_from=/tmp/mnist_classifier
  jaxinv sample --workdir /tmp/mnist_inversion --num-per-class 10 --out /tmp/mnist_samples.npz
The `tiny` variant (configs/mnist.py:tiny) trains for a few steps on a few
hundred examples; it checks the plumbing, not the results.

Expected: CNN test accuracy 99.15 % (3 epochs, 166 s on 2 CPU cores). Generator
target accuracy: 99.9 % overall, every class >= 99.4 % with constant lr; with
the current cosine-decay default one run gave 98.9 % overall and 89.6 % on
class 8 — the per-class goal of 99.5 % is not yet met (see README).
"""

from jaxinv.config import default_config


def get_config(arg=None):
  return default_config("mnist", arg)
