"""ood_mnist: OOD detection with a garbage class fed by inversion, MNIST in-distribution.

Run (from the repository root):
  jaxinv ood train --config configs/ood_mnist.py --workdir runs/ood_mnist
  jaxinv ood evaluate --workdir runs/ood_mnist      # fashion_mnist, cifar10 (gray 28×28), synthetic
  jaxinv ood score --workdir runs/ood_mnist --images my_images.npz --out my_scores.npz
`ood train` also trains the plain 10-class baseline (runs/ood_mnist/baseline: same CNN,
same data, as many epochs as the detector's classifier sees) for MSP, ODIN and energy.
A stopped run (Ctrl-C, SIGTERM, `timeout`) resumes when the same command is rerun.
The `tiny` variant (configs/ood_mnist.py:tiny) checks the plumbing, not the results.

Expected: see docs/ood.md.
"""

from jaxinv.config import default_config


def get_config(arg=None):
  c = default_config("mnist", arg)
  if arg != "tiny":
    # The baseline sees as many epochs as the detector's classifier: (rounds + 1) × 1.
    c.classifier.epochs = (c.ood.rounds + 1) * c.ood.epochs_per_round
  return c
