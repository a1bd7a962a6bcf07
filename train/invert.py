"""Invert a classifier: `python train/invert.py --config configs/mnist.py --workdir DIR
--config.init_from=CLASSIFIER_DIR`.

Thin wrapper over `jaxinv.runs.inversion.run(config, workdir)`."""

import sys

from jaxinv.cli import main

if __name__ == "__main__":
  sys.exit(main(["invert", *sys.argv[1:]]))
