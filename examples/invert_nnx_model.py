"""Invert a Flax NNX classifier.

    python examples/invert_nnx_model.py [--steps 600]

A small NNX CNN is trained on scikit-learn's bundled digits, then handed to
`jaxinv.from_nnx`, which splits it into graph definition and state and runs it in
evaluation mode. The features of the diversity losses are the input of its last
`nnx.Linear`.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxinv
from jaxinv import data


class DigitsCNN(nnx.Module):
  def __init__(self, rngs: nnx.Rngs):
    self.conv = nnx.Conv(1, 16, (3, 3), strides=(2, 2), rngs=rngs)
    self.norm = nnx.BatchNorm(16, rngs=rngs)
    self.dropout = nnx.Dropout(0.2, rngs=rngs)
    self.hidden = nnx.Linear(14 * 14 * 16, 64, rngs=rngs)
    self.head = nnx.Linear(64, 10, rngs=rngs)

  def __call__(self, x):
    h = nnx.relu(self.norm(self.conv(x)))
    h = nnx.relu(self.hidden(self.dropout(h.reshape(h.shape[0], -1))))
    return self.head(h)


def train(model: DigitsCNN, images, labels, *, steps: int = 300, seed: int = 0):
  optimizer = nnx.Optimizer(model, optax.adam(2e-3), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer, x, y):
    def loss_fn(model):
      return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
    grads = nnx.grad(loss_fn)(model)
    optimizer.update(model, grads)

  model.train()
  rng = np.random.default_rng(seed)
  for _ in range(steps):
    idx = rng.integers(0, len(images), 64)
    step(model, optimizer, jnp.asarray(images[idx]), jnp.asarray(labels[idx]))
  return model


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=600, help="inversion steps")
  parser.add_argument("--classifier-steps", type=int, default=300)
  parser.add_argument("--samples-per-class", type=int, default=100)
  args = parser.parse_args(argv)

  x, y = data.load("digits", "train")
  model = train(DigitsCNN(nnx.Rngs(0)), x, y, steps=args.classifier_steps)
  classifier = jaxinv.from_nnx(model)
  predict = jax.jit(lambda params, images: classifier.apply_fn(params, images)[0].argmax(-1))
  x_test, y_test = data.load("digits", "test")
  print(f"classifier test accuracy: {np.mean(np.asarray(predict(classifier.params, x_test)) == y_test):.4f}")

  generator = jaxinv.paper_generator(10, (28, 28, 1), width=8, dropout_rate=0.1)
  inversion = jaxinv.make_inversion(classifier, (28, 28, 1), generator=generator, steps=args.steps,
                                    learning_rate=5e-3, beta=8.0)
  state, _ = jaxinv.fit(inversion, jax.random.key(0), steps=args.steps)
  labels = np.repeat(np.arange(10), args.samples_per_class)
  images = jaxinv.sample(inversion, state, labels, jax.random.key(1))
  pred = np.asarray(predict(classifier.params, images))
  accuracy = np.array([np.mean(pred[labels == c] == c) for c in range(10)])
  print("target accuracy per class: " + " ".join(f"{a:.3f}" for a in accuracy))
  return accuracy


if __name__ == "__main__":
  main()
