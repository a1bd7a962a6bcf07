"""digits: classifier + inversion config.

Run (from the repository root):
  jaxinv train-classifier --config configs/digits.py --workdir /tmp/digits_classifier
  jaxinv invert --config configs/digits.py --workdir /tmp/digits_inversion \
      --config.init_from=/tmp/digits_classifier
  jaxinv sample --workdir /tmp/digits_inversion --num-per-class 10 --out /tmp/digits_samples.npz
The `tiny` variant (configs/digits.py:tiny) trains for a few steps on a few
hundred examples; it checks the plumbing, not the results.

Expected: classifier test accuracy 98.3 %, generator target accuracy
>= 99.6 % on every class after 1500 steps (measured: `jaxinv demo` on a fresh
clone, 5 min 59 s on 2 idle CPU cores).
"""

from jaxinv.config import default_config


def get_config(arg=None):
  return default_config("digits", arg)
