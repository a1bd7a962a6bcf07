"""Train a classifier: `python train/train_classifier.py --config configs/mnist.py --workdir DIR`.

Thin wrapper over `jaxinv.runs.classifier.run(config, workdir)`."""

import sys

from jaxinv.cli import command

if __name__ == "__main__":
  sys.exit(command(["train-classifier", *sys.argv[1:]]))
