"""Test accuracy of trained classifiers on their real test images with Gaussian noise added:
whether a verifier still recognises real images under perturbation (a judge that fails on
noisy real digits measures its own brittleness, not the inversions'; docs/faithful.md).

    python benchmarks/classifier_noise.py --workdir R/mnist_ver_mlp --workdir R/mnist_cls [--stds 0,0.3,0.5]

Noise N(0, std²) in [-1, 1] pixel units, clipped to [-1, 1], one fixed draw (seed 0) per std.
Prints a markdown table: one row per classifier, one column per std.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from jaxinv.runs import classifier as classifier_run


def noisy_accuracy(workdir, stds, batch: int = 1000) -> tuple[list[float], str]:
  """Accuracy per std and the classifier's model name."""
  model, variables, config, _ = classifier_run.restore(workdir)
  images, labels = classifier_run.load_split(config, "test")
  predict = jax.jit(lambda v, x: model.apply(v, x, train=False)[0].argmax(-1))
  result = []
  for std in stds:
    noise = np.random.default_rng(0).normal(size=images.shape).astype(np.float32)
    noisy = np.clip(images + std * noise, -1.0, 1.0)
    pred = np.concatenate([np.asarray(predict(variables, jnp.asarray(noisy[i:i + batch])))
                           for i in range(0, len(noisy), batch)])
    result.append(float(np.mean(pred == labels)))
  return result, config.classifier.model


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", action="append", required=True, help="a train-classifier run (repeatable)")
  parser.add_argument("--stds", default="0,0.3,0.5", help="comma-separated noise stds")
  args = parser.parse_args()
  stds = [float(s) for s in args.stds.split(",")]
  print("| classifier | model | " + " | ".join(f"std {s}" for s in stds) + " |")
  print("|---|---|" + "---:|" * len(stds))
  for workdir in args.workdir:
    accuracy, model = noisy_accuracy(workdir, stds)
    print(f"| {workdir} | {model} | " + " | ".join(f"{100 * a:.2f} %" for a in accuracy) + " |")


if __name__ == "__main__":
  main()
