"""Training-like data reconstruction (TLDR, method notes §7) and its privacy audit.

The argument is DATASET,MODEL,TRAIN_IMAGES[,tiny]: DATASET mnist, fashion_mnist, digits or
cifar10 (the JPEG copy); MODEL mlp or cnn; TRAIN_IMAGES the size of the seeded, class-stratified training
subset (0 or the split size: all of it).

Run (from the repository root):
  jaxinv reconstruct --config configs/reconstruct.py:mnist,cnn,1000 --workdir /tmp/tldr_mnist_cnn_1000
  jaxinv reconstruct --config configs/reconstruct.py:cifar10,cnn,10000 --workdir /tmp/tldr_cifar10_cnn_10000
  jaxinv reconstruct-table --workdir /tmp/tldr_mnist_cnn_1000 [--workdir ...]
The `tiny` variant (e.g. configs/reconstruct.py:digits,mlp,256,tiny) checks the plumbing.

Recipe of the classifier (every cell alike): dropout 0.25, batch norm (the MLP with
classifier.mlp_batch_norm), AdamW weight decay 1e-4, LeakyReLU, a fixed number of steps
(so the 1 000-image subsets see as many updates as the 60 000-image set). Generator:
one-hot conditioning, width 16, 200 steps of batch 64. Loss weights are ours (TLDR
publishes none).
"""

from jaxinv.config import default_config

DATASETS = ("mnist", "fashion_mnist", "digits", "cifar10")
MODELS = ("mlp", "cnn")


def get_config(arg=None):
  parts = (arg or "").split(",")
  tiny = parts[-1] == "tiny"
  parts = parts[:-1] if tiny else parts
  if len(parts) != 3 or parts[0] not in DATASETS or parts[1] not in MODELS or not parts[2].isdigit():
    raise ValueError("configs/reconstruct.py needs DATASET,MODEL,TRAIN_IMAGES[,tiny] as its argument, "
                     f"e.g. configs/reconstruct.py:mnist,cnn,1000 (DATASET in {DATASETS}, MODEL in "
                     f"{MODELS}); got {arg!r}.")
  dataset, model, size = parts[0], parts[1], int(parts[2])
  c = default_config(dataset, "tiny" if tiny else None)
  c.max_train_examples = size if not tiny else (size or c.max_train_examples)
  c.subset_selection = "stratified"
  c.subset_seed = 0
  c.classifier.model = model
  c.classifier.mlp_batch_norm = True
  c.classifier.dropout_rate = 0.25
  c.classifier.weight_decay = 1e-4
  c.classifier.steps = 4 if tiny else 500
  c.checkpoint.every = 4 if tiny else 1000
  c.generator.mode = "one_hot"
  c.generator.width = 8 if tiny else 16
  c.inversion.steps = 4 if tiny else 200
  c.inversion.eval_samples_per_class = 4 if tiny else 50
  rc = c.reconstruction
  rc.kl_perturbed = 1.0  # as α
  rc.ce_perturbed = 4.0  # as β
  rc.perturbation = "sign"
  rc.perturbation_size = 0.05
  rc.weight_gradient_norm = 1.0
  rc.gradient_norm_examples = 16  # of the batch of 64: the CNN's step costs 0.34 s with all 64
  c.priors.total_variation = 1.0
  c.priors.pixel_range = 1.0
  return c
