"""scikit-learn's bundled handwritten digits, made to look like MNIST.

`sklearn.datasets.load_digits` ships with scikit-learn (no download): 1797
8x8 images with values 0..16, high = ink, so already MNIST's white-on-black.
MNIST centres each digit in a 20x20 box inside a 28x28 frame; the 8x8 digits
fill their frame, so they are upsampled to 20x20 and padded by 4 pixels.
"""

import jax
import numpy as np

_DIGIT_BOX = 20  # MNIST's digit box inside the 28x28 image
_PAD = (28 - _DIGIT_BOX) // 2
_MAX_VALUE = 16
_TEST_FRACTION = 0.2
_SEED = 0


def load_split(split: str) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images (N, 28, 28, 1) and int labels (N,): 1437 train / 360 test."""
  # Imported here: scikit-learn takes over a second to import, and only this dataset needs it.
  from sklearn import datasets as sk_datasets  # noqa: PLC0415
  from sklearn import model_selection  # noqa: PLC0415

  x, y = sk_datasets.load_digits(return_X_y=True)
  # Fixed seed and stratified: the same, class-balanced split on every call.
  x_train, x_test, y_train, y_test = model_selection.train_test_split(
      x, y, test_size=_TEST_FRACTION, random_state=_SEED, stratify=y)
  x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
  return _to_mnist_frame(x.reshape(-1, 8, 8)), y


def _to_mnist_frame(images: np.ndarray) -> np.ndarray:
  pixels = images.astype(np.float32) * (255 / _MAX_VALUE)
  # Bilinear never overshoots, so values stay in 0..255.
  box = jax.image.resize(pixels, (len(pixels), _DIGIT_BOX, _DIGIT_BOX), method="linear")
  box = np.rint(np.asarray(box)).astype(np.uint8)
  return np.pad(box, ((0, 0), (_PAD, _PAD), (_PAD, _PAD)))[..., None]
