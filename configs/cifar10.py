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
a patch-whitening first convolution set from the data, three conv/pool/batch-norm/GELU
blocks, label smoothing 0.2, random flips and 2-pixel shifts, an EMA of the weights and
flipped copies at test time. Narrower than the recipe's 64/256/256 (32/128/128: a step
costs under half as much on CPU) and trained with this project's AdamW + cosine schedule.
XLA's own convolution gradients ("xla"): on this net they measured faster than the blocked
kernel gradient on 2 CPU cores (0.99 vs 1.42 s per 256-image step, 6 vs 39 s to compile).

Expected (measured once, on the JPEG copy's 10,000 test images, 2 CPU cores shared with
other jobs): 4 epochs (`--config.classifier.epochs=4`, 780 steps) reach 82.6 % test accuracy
in 515 s wall, data loading and evaluation included (every class >= 64 %: cat is hardest).
The default 8 epochs (about 17 min at that speed) and the 90 % goal are not measured yet;
more epochs or the recipe's full widths (64, 256, 256; ~2.3x the step time) are the
levers, and the learning rate is not tuned (5e-3 did worse than 2e-3 in a 78-step check).
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
  c.learning_rate = 2e-3
  c.weight_decay = 5e-2  # AdamW's decoupled decay (times the learning rate per step)
  c.label_smoothing = 0.2
  c.flip = True
  c.translate = 2
  c.ema_decay = 0.98
  c.test_flips = True
  return config
