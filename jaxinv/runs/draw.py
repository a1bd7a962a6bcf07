"""Images from an inversion run's generator as its config asks: plain draws, or by
rejection (`jaxinv.acceptance`) when `generator.accept_threshold` (or the command's
`--accept-threshold`) is above 0, accepted by the run's `classifier_ensemble.workdirs`
(or `--accept-by`)."""

from jaxinv import acceptance, data, paths, sampling
from jaxinv.classifier import from_linen
from jaxinv.runs import classifier as classifier_run


def threshold(config, override: float | None = None) -> float:
  """The acceptance threshold: `override` when given, else the run's config; checked."""
  value = config.generator.accept_threshold if override is None else override
  if not 0.0 <= value < 1.0:
    raise ValueError(f"The acceptance threshold is a probability in [0, 1), got {value}; 0 "
                     "keeps every image (--accept-threshold 0).")
  return float(value)


def judges(accept_by, config, verifier_dir=None) -> list:
  """`[(absolute workdir, Classifier)]` of the classifier runs that accept or reject the
  generated images: `accept_by`, else the run's `classifier_ensemble.workdirs`."""
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
  found = []
  for workdir in workdirs:
    model, variables, judge_config, _ = classifier_run.restore(workdir)
    judge_info = data.info(judge_config.dataset)
    if (judge_info.num_classes, judge_info.image_shape) != (info.num_classes, info.image_shape):
      raise ValueError(f"The accepting classifier {workdir} was trained on {judge_config.dataset}, "
                       f"not on {info.name}'s images and classes.")
    found.append((workdir, from_linen(model, variables)))
  return found


def images(generator, variables, labels, key, config, *, accept_threshold: float = 0.0,
           accept_by=None, verifier_dir=None, batch_size: int = 500):
  """`(images, record)`: `labels`' images, drawn by rejection when `accept_threshold` > 0;
  `record` names the threshold, the accepting runs, the share of draws accepted per class
  and the draws made (empty for plain draws)."""
  dropout = config.generator.dropout_at_sampling
  if not accept_threshold:
    if accept_by:
      raise ValueError("--accept-by names the classifiers that accept or reject images; give "
                       "--accept-threshold (e.g. 0.7) too.")
    return sampling.sample(generator, variables, labels, key, batch_size=batch_size,
                           dropout=dropout), {}
  found = judges(accept_by, config, verifier_dir)
  try:
    drawn = acceptance.sample_accepted(
        generator, variables, labels, key,
        acceptance.confident([c for _, c in found], accept_threshold, batch_size=batch_size),
        batch_size=batch_size, dropout=dropout)
  except ValueError as err:
    raise ValueError(f"{err} On the command line: --accept-threshold with a lower value, or 0 "
                     "to keep every image.") from err
  return drawn.images, {"accept_threshold": accept_threshold, "accept_by": [w for w, _ in found],
                        "acceptance_per_class": drawn.acceptance_per_class,
                        "accept_drawn": drawn.drawn}
