"""PyTorch versions of jaxinv's MNIST generator, paper CNN and inversion loss, for
`step_speed.py` only (PyTorch is a benchmark extra, never a dependency of jaxinv).

Same layer shapes and parameter counts as `jaxinv.models.generator.ConditionedGenerator`
(vector_matrix mode) and `jaxinv.models.classifiers.PaperCNN`; same loss terms as
`jaxinv.losses.inversion_loss`; Adam / AdamW with the same settings. Weights are
PyTorch's own initialisation: step time does not depend on them.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


class Generator(nn.Module):
  def __init__(self, num_classes=10, size=28, channels=1, width=32, latent_dim=100, embed_dim=100,
               upsample="resize", dropout_rate=0.2):
    super().__init__()
    k, self.k, self.half, self.width, self.upsample = num_classes, num_classes, size // 2, width, upsample
    self.vector_embed = nn.Linear(k, embed_dim, bias=False)
    self.project = nn.Linear(latent_dim + embed_dim, k * k * 2 * width, bias=False)
    self.bn_project = nn.BatchNorm1d(k * k * 2 * width, momentum=0.1)
    if upsample == "transpose":
      self.up0 = nn.ConvTranspose2d(2 * width + 1, 2 * width, self.half - k + 1, bias=False)
      self.up1 = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False)
    else:
      self.up0 = nn.Conv2d(2 * width + 1, 2 * width, 3, padding=1, bias=False)
      self.up1 = nn.Conv2d(2 * width, width, 3, padding=1, bias=False)
    self.bn_up0, self.bn_up1 = nn.BatchNorm2d(2 * width), nn.BatchNorm2d(width)
    self.to_image = nn.Conv2d(width, channels, 3, padding=1)
    self.drop = nn.Dropout(dropout_rate)

  def forward(self, z, p, matrix):
    h = torch.cat([z, self.vector_embed(p * self.k)], dim=1)
    h = F.relu(self.bn_project(self.project(h))).view(-1, 2 * self.width, self.k, self.k)
    h = torch.cat([h, matrix], dim=1)
    if self.upsample == "transpose":
      h = self.up0(h)
    else:
      h = self.up0(F.interpolate(h, size=(self.half, self.half), mode="bilinear", align_corners=False))
    h = self.drop(F.relu(self.bn_up0(h)))
    h = self.up1(h) if self.upsample == "transpose" else self.up1(F.interpolate(h, scale_factor=2))
    h = self.drop(F.relu(self.bn_up1(h)))
    return torch.tanh(self.to_image(h))


class PaperCNN(nn.Module):
  def __init__(self, num_classes=10, size=28, channels=1, widths=(32, 64), dense=128, dropout_rate=0.25):
    super().__init__()
    self.convs, self.bns, c = nn.ModuleList(), nn.ModuleList(), channels
    for w in widths:
      self.convs.append(nn.Conv2d(c, w, 3, padding=1, bias=False))
      self.bns.append(nn.BatchNorm2d(w))
      c, size = w, size // 2
    self.dense = nn.Linear(c * size * size, dense)
    self.head = nn.Linear(dense, num_classes)
    self.drop = nn.Dropout(dropout_rate)

  def forward(self, x):
    for conv, bn in zip(self.convs, self.bns):
      x = F.max_pool2d(F.leaky_relu(bn(conv(x)), 0.2), 2)
    features = F.leaky_relu(self.dense(self.drop(x).flatten(1)), 0.2)
    return self.head(self.drop(features)), features


def hot_matrices(y, k):
  """The 'cross' pattern: row y and column y set (see jaxinv.conditioning)."""
  eye = F.one_hot(y, k).float()
  return torch.clamp(eye[:, :, None] + eye[:, None, :], max=1.0)[:, None]


def inversion_loss(logits, features, p, y, weights=(1.0, 4.0, 1.0, 1.0)):
  log_q = F.log_softmax(logits, dim=1)
  kl = torch.sum(torch.xlogy(p, p) - p * log_q, dim=1).mean()
  ce = F.nll_loss(log_q, y)
  f_hat = features / features.norm(dim=1, keepdim=True).clamp_min(1e-8)
  gram = f_hat @ f_hat.T
  n = features.shape[0]
  eye = torch.eye(n, device=features.device)
  cosine = (gram * (1 - eye)).sum() / (n * (n - 1))
  orth = ((gram - eye) ** 2).mean()
  a, b, c, d = weights
  return a * kl + b * ce + c * cosine + d * orth


def _autocast(device, dtype):
  """Mixed precision as jaxinv's compute_dtype: the models under autocast, losses in float32."""
  return torch.autocast(device_type=device, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def make_inversion_step(generator, classifier, batch_size, num_classes=10, latent_dim=100, device="cpu",
                        dtype=None):
  generator.to(device)
  classifier.to(device).eval()
  for p in classifier.parameters():
    p.requires_grad_(False)
  generator.train()
  opt = torch.optim.Adam(generator.parameters(), lr=2e-3, eps=1e-6)

  def step():
    z = torch.randn(batch_size, latent_dim, device=device)
    p = F.softmax(torch.randn(batch_size, num_classes, device=device), dim=1)
    y = p.argmax(1)
    with _autocast(device, dtype):
      images = generator(z, p, hot_matrices(y, num_classes))
      logits, features = classifier(images)
    loss = inversion_loss(logits.float(), features.float(), p, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  return step


def make_classifier_step(classifier, batch_size, size=28, channels=1, num_classes=10, device="cpu", dtype=None):
  classifier.to(device).train()
  opt = torch.optim.AdamW(classifier.parameters(), lr=2e-3, eps=1e-6, weight_decay=1e-4)
  images = torch.rand(batch_size, channels, size, size, device=device) * 2 - 1
  labels = torch.randint(0, num_classes, (batch_size,), device=device)

  def step():
    with _autocast(device, dtype):
      logits, _ = classifier(images)
    loss = F.cross_entropy(logits.float(), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  return step


def parameter_count(module):
  return sum(p.numel() for p in module.parameters())
