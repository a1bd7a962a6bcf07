"""Config → explicit arguments of the library: the one place an inversion's config
fields are read (terms and weights, input transform, ensemble members)."""

from jaxinv import class_evidence, classifier_ensemble, data, diversity, priors, reconstruction, transforms
from jaxinv.ensemble import HYPER_FIELDS, Member
from jaxinv.runs import classifier as classifier_run


def prior_terms(config) -> tuple[dict, dict]:
  """`(terms, weights)` for the priors with a non-zero weight in `config.priors`
  (zero-weight terms are left out of the step, so they cost nothing)."""
  candidates = {**{name: priors.image_prior_term(prior) for name, prior in priors.IMAGE_PRIORS.items()},
                **priors.MODEL_PRIORS, "pixel_cosine": diversity.pixel_cosine_term,
                "mode_seeking": diversity.mode_seeking_term,
                "class_cosine": diversity.class_cosine_term,
                "margin": class_evidence.margin_term(float(config.priors.margin_size))}
  return _nonzero(candidates, lambda name: config.priors.get(name, 0.0))


def reconstruction_terms(config) -> tuple[dict, dict]:
  """`(terms, weights)` for the reconstruction terms with a non-zero weight in
  `config.reconstruction`."""
  rc = config.reconstruction
  kind, size = rc.perturbation, float(rc.perturbation_size)
  candidates = {"kl_perturbed": lambda: reconstruction.kl_perturbed_term(kind, size),
                "ce_perturbed": lambda: reconstruction.ce_perturbed_term(kind, size),
                "weight_gradient_norm":
                    lambda: reconstruction.weight_gradient_norm_term(rc.gradient_norm_examples)}
  terms, weights = _nonzero(candidates, lambda name: rc[name])
  return {name: build() for name, build in terms.items()}, weights


def _nonzero(candidates: dict, weight_of) -> tuple[dict, dict]:
  terms, weights = {}, {}
  for name, term in candidates.items():
    weight = float(weight_of(name))
    if weight:
      terms[name], weights[name] = term, weight
  return terms, weights


def input_transform(config):
  """The input transform that `config.robustness` describes (None: none)."""
  r = config.robustness
  return transforms.make_input_transform(jitter=float(r.jitter), scale=float(r.scale),
                                         flip=bool(r.flip), noise=float(r.noise))


def members(config) -> list[Member]:
  """The members `config.ensemble` describes (empty lists take the run's values)."""
  e, inv = config.ensemble, config.inversion
  count = len(e.seeds)
  defaults = {"alpha": inv.alpha, "beta": inv.beta, "gamma": inv.gamma, "delta": inv.delta,
              "dropout_rate": config.generator.dropout_rate}
  values = {name: list(e[name]) or [defaults[name]] * count for name in HYPER_FIELDS}
  return [Member(int(e.seeds[i]), *(float(values[name][i]) for name in HYPER_FIELDS))
          for i in range(count)]


def classifier_ensemble_term(config) -> tuple[dict, dict]:
  """The multi-classifier terms over the classifier runs in `classifier_ensemble.workdirs`
  (any architectures, each architecture's runs stacked): their α·KL + β·CE and their
  within-class cosine, each averaged over the runs, each where its weight is non-zero."""
  weight = float(config.priors.classifier_ensemble)
  cosine_weight = float(config.priors.ensemble_class_cosine)
  if not (weight or cosine_weight):
    return {}, {}
  info = data.info(config.dataset)
  members = []
  for workdir in config.classifier_ensemble.workdirs:
    model, variables, _, _ = classifier_run.restore_for(
        workdir, info, "The classifier_ensemble member",
        f"name `jaxinv train-classifier` runs on {config.dataset}")
    members.append((model, variables))
  # Members of one architecture are stacked and run together; each architecture is a group.
  groups = classifier_ensemble.group_by_architecture(
      members, config.classifier_ensemble.weights, config.classifier_ensemble.cosine_weights)
  inv = config.inversion
  impl = classifier_ensemble.resolve_impl(config.classifier_ensemble.impl)
  # One pass of the members per step, shared by both terms.
  members_on_seen = classifier_ensemble.make_members_on_seen(
      groups, impl=impl, feature_layer=inv.feature_layer)
  builders = {
      "classifier_ensemble": lambda: classifier_ensemble.make_term(
          groups, alpha=inv.alpha, beta=inv.beta, kl_temperature=inv.kl_temperature,
          impl=impl, members_on_seen=members_on_seen),
      "ensemble_class_cosine": lambda: classifier_ensemble.make_cosine_term(
          groups, impl=impl, feature_layer=inv.feature_layer,
          members_on_seen=members_on_seen)}
  terms, weights = _nonzero(builders, lambda name: config.priors[name])
  return {name: build() for name, build in terms.items()}, weights


def terms_and_weights(config) -> tuple[dict, dict]:
  """`(extra_terms, extra_weights)` for `steps.make_inversion_step`: every term the config
  gives a non-zero weight (image priors, reconstruction terms, the multi-classifier term)."""
  terms, weights = {}, {}
  for more_terms, more_weights in (prior_terms(config), reconstruction_terms(config),
                                   classifier_ensemble_term(config)):
    terms.update(more_terms)
    weights.update(more_weights)
  return terms, weights


def inversion_terms(config) -> dict:
  """The same terms as `{name: (weight, term)}`, the form `jaxinv.make_inversion` takes."""
  terms, weights = terms_and_weights(config)
  return {name: (weights[name], term) for name, term in terms.items()}
