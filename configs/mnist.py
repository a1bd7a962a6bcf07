"""mnist: classifier + inversion config.

Run (from the repository root):
  jaxinv train-classifier --config configs/mnist.py --workdir /tmp/mnist_classifier
  jaxinv invert --config configs/mnist.py --workdir /tmp/mnist_inversion \
      --config.init_from=/tmp/mnist_classifier
  jaxinv sample --workdir /tmp/mnist_inversion --num-per-class 10 --out /tmp/mnist_samples.npz
The `tiny` variant (configs/mnist.py:tiny) trains for a few steps on a few
hundred examples; it checks the plumbing, not the results. The `fast` variant
(configs/mnist.py:fast) changes only the inversion: a generator of half the width
(32 → 16 base channels), learning rate 1e-2, batch 32 and 700 steps, a run length
measured to reach >= 99 % target accuracy on every class for seeds 0, 1 and 2
(benchmarks/time_to_target.py; docs/performance.md).

Expected: CNN test accuracy 99.17 % (3 epochs, 158 s on 2 CPU cores). Generator
(1500 steps, 393 s): target accuracy 99.98 % overall, every class >= 99.8 %;
within-class feature cosine 0.756 (real test images: 0.700). `fast` generator:
700 steps of batch 32 in 12.7-12.9 s on a 2-core AMD EPYC (Zen 5) VM (compile included),
every class >= 99.4 % (seeds 0-2: 99.4 / 99.6 / 99.6 %).
"""

from jaxinv.config import default_config


def get_config(arg=None):
  if arg == "fast":
    config = default_config("mnist")
    config.generator.width = 16
    config.inversion.learning_rate = 1e-2
    config.inversion.batch_size = 32
    config.inversion.steps = 700
    return config
  return default_config("mnist", arg)
