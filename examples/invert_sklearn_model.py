"""Invert a classifier trained by another library: scikit-learn's MLPClassifier.

    python examples/invert_sklearn_model.py [--steps 600] [--verifier-epochs 20]

The MLP is fitted on scikit-learn's bundled digits (28×28, pixels in [0, 1]); its
weights become a pure jnp function, which `jaxinv.from_function` wraps with an
`InputSpec` saying the model expects [0, 1] pixels. jaxinv's own digits CNN, a
classifier of another family trained separately, then judges the inversions.
"""

import argparse
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.neural_network import MLPClassifier

import jaxinv
from jaxinv import config as config_lib
from jaxinv import data
from jaxinv.runs import classifier as classifier_run


def fit_sklearn(images01: np.ndarray, labels: np.ndarray, seed: int = 0) -> MLPClassifier:
  model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=200, random_state=seed)
  return model.fit(images01.reshape(len(images01), -1), labels)


def as_jax(model: MLPClassifier):
  """`(fn, params)`: the fitted MLP's forward pass (ReLU hidden layers) in jnp, returning
  `(logits, last hidden layer)` so the diversity losses see the MLP's own features."""
  params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in zip(model.coefs_, model.intercepts_)]

  def fn(params, images):
    h = images.reshape(images.shape[0], -1)
    for w, b in params[:-1]:
      h = jax.nn.relu(h @ w + b)
    w, b = params[-1]
    return h @ w + b, h

  return fn, params


def per_class_accuracy(pred, labels, num_classes: int = 10) -> np.ndarray:
  return np.array([np.mean(pred[labels == c] == c) for c in range(num_classes)])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=600, help="inversion steps")
  parser.add_argument("--verifier-epochs", type=int, default=20,
                      help="epochs of jaxinv's digits CNN (0: skip the verifier)")
  parser.add_argument("--samples-per-class", type=int, default=100)
  args = parser.parse_args(argv)

  x, y = data.load("digits", "train")  # [-1, 1]
  sk_model = fit_sklearn((x + 1) / 2, y)
  x_test, y_test = data.load("digits", "test")
  print(f"scikit-learn MLP test accuracy: {sk_model.score((x_test.reshape(len(x_test), -1) + 1) / 2, y_test):.4f}")

  fn, params = as_jax(sk_model)
  classifier = jaxinv.from_function(fn, params, inputs=jaxinv.InputSpec(value_range=(0.0, 1.0)))
  generator = jaxinv.paper_generator(10, (28, 28, 1), width=8, dropout_rate=0.1)
  inversion = jaxinv.make_inversion(classifier, (28, 28, 1), generator=generator, steps=args.steps,
                                    learning_rate=5e-3, beta=8.0)
  state, _ = jaxinv.fit(inversion, jax.random.key(0), steps=args.steps)
  labels = np.repeat(np.arange(10), args.samples_per_class)
  images = jaxinv.sample(inversion, state, labels, jax.random.key(1))
  # The scikit-learn model itself scores the images, through its own numpy code.
  sk_pred = sk_model.predict((images.reshape(len(images), -1) + 1) / 2)
  target = per_class_accuracy(sk_pred, labels)
  print("target accuracy per class (scikit-learn's predict): " + " ".join(f"{a:.3f}" for a in target))
  result = {"target_accuracy_per_class": target}
  if args.verifier_epochs:
    config = config_lib.default_config("digits")
    config.classifier.epochs = args.verifier_epochs
    with tempfile.TemporaryDirectory() as workdir:
      classifier_run.run(config, workdir)
      model, variables, _, _ = classifier_run.restore(workdir)
    logits, _ = jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, images)
    verifier = per_class_accuracy(np.asarray(logits.argmax(-1)), labels)
    print("jaxinv digits CNN accuracy per class: " + " ".join(f"{a:.3f}" for a in verifier)
          + f" (mean {verifier.mean():.4f})")
    result["verifier_accuracy_per_class"] = verifier
  return result


if __name__ == "__main__":
  main()
