"""A classifier factory for `jaxinv invert --config.classifier_fn=examples/my_classifier.py:factory`.

    jaxinv invert --config configs/digits.py --workdir runs/my_inv \
        --config.classifier_fn=examples/my_classifier.py:factory

`factory()` takes no arguments and returns a `jaxinv.Classifier`; here a logistic
regression fitted on the bundled digits (a second or two), as a jnp function. Put your
own model's loading code in such a function: build the module, restore its weights,
wrap it with `jaxinv.from_linen` / `from_nnx` / `from_function`.
"""

import jax.numpy as jnp
from sklearn.linear_model import LogisticRegression

import jaxinv
from jaxinv import data


def factory() -> jaxinv.Classifier:
  x, y = data.load("digits", "train")  # 28×28×1 in [-1, 1]
  fitted = LogisticRegression(max_iter=300).fit(x.reshape(len(x), -1), y)
  params = (jnp.asarray(fitted.coef_.T, jnp.float32), jnp.asarray(fitted.intercept_, jnp.float32))
  return jaxinv.from_function(lambda p, images: images.reshape(len(images), -1) @ p[0] + p[1],
                              params)
