"""Invert your own Flax Linen classifier.

    python examples/invert_linen_model.py [--steps 600] [--out runs/examples/linen_samples.png]

The script first trains a small Linen MLP on scikit-learn's bundled digits (no download;
28×28 images in [-1, 1]). The model returns logits only, has batch norm and dropout and
no `train` argument: `jaxinv.from_linen` runs it in inference mode all the same.
"""

import argparse
from pathlib import Path

import flax.linen as nn
import jax
import numpy as np
import optax

import jaxinv
from jaxinv import data, plotting


class DigitsMLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.BatchNorm(use_running_average=False, momentum=0.9)(nn.Dense(64)(x)))
    x = nn.Dropout(0.2, deterministic=False)(x)
    return nn.Dense(10)(x)


def train(model, images, labels, *, steps: int = 300, seed: int = 0):
  """Plain Adam on cross-entropy, batch statistics updated as Flax does."""
  variables = model.init({"params": jax.random.key(seed), "dropout": jax.random.key(seed + 1)},
                         images[:2])
  tx = optax.adam(2e-3)
  opt_state = tx.init(variables["params"])

  @jax.jit
  def step(variables, opt_state, x, y, key):
    def loss_fn(params):
      logits, updates = model.apply({**variables, "params": params}, x, mutable=["batch_stats"],
                                    rngs={"dropout": key})
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates
    (_, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
    delta, opt_state = tx.update(grads, opt_state)
    return {"params": optax.apply_updates(variables["params"], delta), **updates}, opt_state

  rng = np.random.default_rng(seed)
  for i in range(steps):
    idx = rng.integers(0, len(images), 64)
    variables, opt_state = step(variables, opt_state, images[idx], labels[idx], jax.random.key(i))
  return variables


def per_class_accuracy(classifier, images, labels, num_classes: int = 10) -> np.ndarray:
  pred = np.asarray(jax.jit(classifier.apply_fn)(classifier.params, images)[0].argmax(-1))
  return np.array([np.mean(pred[labels == c] == c) for c in range(num_classes)])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=600, help="inversion steps")
  parser.add_argument("--classifier-steps", type=int, default=300)
  parser.add_argument("--samples-per-class", type=int, default=100)
  parser.add_argument("--out", default="runs/examples/linen_samples.png")
  args = parser.parse_args(argv)

  x, y = data.load("digits", "train")
  model = DigitsMLP()
  variables = train(model, x, y, steps=args.classifier_steps)
  classifier = jaxinv.from_linen(model, variables)
  x_test, y_test = data.load("digits", "test")
  print(f"classifier test accuracy: {per_class_accuracy(classifier, x_test, y_test).mean():.4f}")

  generator = jaxinv.paper_generator(10, (28, 28, 1), width=8, dropout_rate=0.1)
  inversion = jaxinv.make_inversion(classifier, (28, 28, 1), generator=generator, steps=args.steps,
                                    learning_rate=5e-3, beta=8.0)
  state, _ = jaxinv.fit(inversion, jax.random.key(0), steps=args.steps)
  labels = np.repeat(np.arange(10), args.samples_per_class)
  images = jaxinv.sample(inversion, state, labels, jax.random.key(1))
  accuracy = per_class_accuracy(classifier, images, labels)
  print("target accuracy per class: " + " ".join(f"{a:.3f}" for a in accuracy))
  Path(args.out).parent.mkdir(parents=True, exist_ok=True)
  plotting.class_grid(images, labels, [str(c) for c in range(10)], per_class=8).savefig(args.out)
  print(f"samples: {args.out}")
  return accuracy


if __name__ == "__main__":
  main()
