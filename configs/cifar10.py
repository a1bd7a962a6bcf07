"""cifar10: classifier + inversion config.

Run (from the repository root):
  jaxinv train-classifier --config configs/cifar10.py --workdir /tmp/cifar10_classifier
  jaxinv invert --config configs/cifar10.py --workdir /tmp/cifar10_inversion \
      --config.init_from=/tmp/cifar10_classifier
  jaxinv sample --workdir /tmp/cifar10_inversion --num-per-class 10 --out /tmp/cifar10_samples.npz
The `tiny` variant (configs/cifar10.py:tiny) trains for a few steps on a few
hundred examples; it checks the plumbing, not the results.

Data: with JAXINV_DATA_DIR holding `cifar10_jpeg/`, the full 50,000 / 10,000 images
of the JPEG copy (summary.json's data_source says "CIFAR-10 (JPEG copy)").

Classifier: after Keller Jordan's airbench recipe (github.com/KellerJordan/cifar10-airbench):
a patch-whitening first convolution set from the data (kept fixed; its bias trains for the
first 30 % of the steps), three conv/pool/batch-norm/GELU blocks with fixed batch-norm scales,
label smoothing 0.2, random flips and 2-pixel shifts, SGD with Nesterov momentum on a triangle
schedule (batch-norm biases at 64x the rate), lookahead every 5 steps, and flipped and shifted
copies at test time. Narrower than the recipe's 64/256/256 (32/128/128: a step costs under
half as much on CPU). XLA's own convolution gradients ("xla"): on this net they measured
faster than the blocked kernel gradient on 2 CPU cores (0.99 vs 1.42 s per 256-image step,
6 vs 39 s to compile).

Expected (the JPEG copy's 10,000 test images, 2 CPU cores, seed 0, 2026-12-04;
docs/evaluation.md): the recipe's full widths for 12 epochs
(`--config.classifier.widths=[64,256,256] --config.classifier.epochs=12`) reach 90.54 % in
1575 s; the default narrow net and 8 epochs 87.63 % in 347 s.
"""

from jaxinv.config import default_config


def get_config(arg=None):
  config = default_config("cifar10", arg)
  tiny = arg == "tiny"
  c = config.classifier
  c.model = "airbench"
  c.widths = (8, 16, 16) if tiny else (32, 128, 128)
  c.conv_impl = "xla"
  c.epochs = 1 if tiny else 8
  c.batch_size = 64 if tiny else 256
  # airbench's SGD: Nesterov momentum 0.85, a triangle schedule peaking at 0.375 on the
  # batch-mean loss (its 11.5 per 1024 summed examples, at batch 256), weight decay 1.33e-3
  # on the gradient (its 0.0153 / 11.5), batch-norm biases at 64× the rate.
  c.optimizer = "nesterov"
  c.learning_rate = 0.375
  c.weight_decay = 1.33e-3
  c.momentum = 0.85
  c.bias_lr_scale = 64.0
  c.whiten_bias_fraction = 0.3
  c.lookahead_period = 5
  c.label_smoothing = 0.2
  c.flip = True
  c.translate = 2
  c.test_flips = True
  c.test_translate = 1
  return config
