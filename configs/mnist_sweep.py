"""mnist_sweep: an ensemble of 4 generators against one MNIST classifier, in one program.

Members differ in seed and in the CE weight β (α, γ, δ and dropout as in
configs/mnist.py); results are reported per member in summary.json
("members": one entry each with its settings, per-class target accuracy and
within-class cosine) and in metrics.jsonl ("loss/2" is member 2's loss).

Run (from the repository root):
  jaxinv train-classifier --config configs/mnist.py --workdir /tmp/mnist_classifier
  jaxinv invert --config configs/mnist_sweep.py --workdir /tmp/mnist_sweep \
      --config.init_from=/tmp/mnist_classifier
  jaxinv sample --workdir /tmp/mnist_sweep --num-per-class 10 --out /tmp/sweep_samples.npz
The `tiny` variant checks the plumbing only.

Expected: not measured at full size yet (4 × the time of configs/mnist.py on a
CPU, where members run one after another; see docs/scaling.md).
"""

from jaxinv.config import default_config


def get_config(arg=None):
  config = default_config("mnist", arg)
  config.ensemble.seeds = (0, 1, 2, 3)
  config.ensemble.beta = (1.0, 2.0, 4.0, 8.0)
  return config
