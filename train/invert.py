"""Invert a classifier: `python train/invert.py --config configs/mnist.py --workdir DIR
--config.init_from=CLASSIFIER_DIR`.

Thin wrapper over `jaxinv.runs.inversion.run(config, workdir)`."""

import sys

from jaxinv.cli import command

if __name__ == "__main__":
  sys.exit(command(["invert", *sys.argv[1:]]))
