"""Images from an inversion run's generator as its config asks: plain draws, or by
rejection (`jaxinv.acceptance`) when `generator.accept_threshold` (or the command's
`--accept-threshold`) is above 0, accepted by the run's `classifier_ensemble.workdirs`
(or `--accept-by`).

    accept = draw.acceptor(config, draw.threshold(config, flag), accept_by)  # loads once
    images, record = draw.images(generator, variables, labels, key, config, accept)
"""

from typing import Callable, NamedTuple

from jaxinv import acceptance, data, paths, sampling
from jaxinv.classifier import from_linen
from jaxinv.runs import classifier as classifier_run


class Acceptor(NamedTuple):
  """`accept(images, labels)`, its threshold and the absolute workdirs of its classifiers."""
  accept: Callable
  threshold: float
  workdirs: list


def threshold(config, override: float | None = None) -> float:
  """The acceptance threshold: `override` when given, else the run's config; checked."""
  return acceptance.check_threshold(config.generator.accept_threshold if override is None
                                    else override)


def acceptor(config, accept_threshold: float, accept_by=None, verifier_dir=None, *,
             batch_size: int = 500) -> Acceptor | None:
  """The classifier runs that accept or reject the generated images (`accept_by`, else the
  run's `classifier_ensemble.workdirs`), loaded; None for plain draws (threshold 0)."""
  if not accept_threshold:
    if accept_by:
      raise ValueError("--accept-by names the classifiers that accept or reject images; give "
                       "--accept-threshold (e.g. 0.7) too.")
    return None
  info = data.info(config.dataset)
  workdirs = list(accept_by or config.classifier_ensemble.workdirs)
  if not workdirs:
    raise ValueError("An acceptance threshold rejects images by classifiers, but the run has no "
                     "classifier_ensemble.workdirs; name `jaxinv train-classifier` runs with "
                     "--accept-by.")
  workdirs = [paths.absolute(w) for w in workdirs]
  if verifier_dir is not None and paths.absolute(verifier_dir) in workdirs:
    raise ValueError(f"--accept-by includes the verifier {verifier_dir}: it would judge the images "
                     "it chose. Accept by other classifiers (the run's robust members, the target).")
  classifiers = []
  for workdir in workdirs:
    model, variables, _, _ = classifier_run.restore_for(
        workdir, info, "The accepting classifier",
        f"accept by `jaxinv train-classifier` runs on {info.name}")
    classifiers.append(from_linen(model, variables))
  return Acceptor(acceptance.confident(classifiers, accept_threshold, batch_size=batch_size),
                  accept_threshold, workdirs)


def images(generator, variables, labels, key, config, accept: Acceptor | None = None, *,
           batch_size: int = 500):
  """`(images, record)`: `labels`' images, drawn by rejection with `accept` when given;
  `record` names the threshold, the accepting runs, the share of draws accepted per class
  and the draws made (empty for plain draws)."""
  dropout = config.generator.dropout_at_sampling
  if accept is None:
    return sampling.sample(generator, variables, labels, key, batch_size=batch_size,
                           dropout=dropout), {}
  try:
    drawn = acceptance.sample_accepted(generator, variables, labels, key, accept.accept,
                                       batch_size=batch_size, dropout=dropout)
  except ValueError as err:
    raise ValueError(f"{err} On the command line: --accept-threshold with a lower value, or 0 "
                     "to keep every image.") from err
  return drawn.images, {"accept_threshold": accept.threshold, "accept_by": accept.workdirs,
                        "acceptance_per_class": drawn.acceptance_per_class,
                        "accept_drawn": drawn.drawn}
