"""Faithful-inversion ingredients: feature-statistics prior, input transforms,
multi-classifier term, the pixel baseline (issue 9)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from jaxinv.runs import options
from jaxinv import classifier_ensemble, cli, conditioning, data, feature_stats, losses, steps, transforms
from jaxinv.config import default_config, validate
from jaxinv.models import classifiers, layers
from jaxinv.models import generator as generator_module
from tests.test_steps import K, NZ, SHAPE, _inversion_setup

DIGITS_TINY = str(REPO / "configs" / "digits.py:tiny")


def _numpy_statistics_loss(inputs, stats):
  total = 0.0
  for name, x in inputs.items():
    flat = x.reshape(-1, x.shape[-1])
    mean = flat.sum(0) / len(flat)
    var = ((flat - mean) ** 2).sum(0) / len(flat)
    total += np.sqrt(((mean - stats[name]["mean"]) ** 2).sum())
    total += np.sqrt(((var - stats[name]["var"]) ** 2).sum())
  return total


def test_feature_statistics_loss_matches_numpy():
  rng = np.random.default_rng(0)
  inputs = {("a",): rng.normal(size=(3, 4, 4, 2)), ("b",): rng.normal(1.0, 2.0, size=(3, 2, 2, 5))}
  stats = {"a": {"mean": rng.normal(size=2), "var": rng.uniform(0.5, 2, size=2)},
           "b": {"mean": rng.normal(size=5), "var": rng.uniform(0.5, 2, size=5)}}
  got = feature_stats.feature_statistics_loss({k: jnp.asarray(v) for k, v in inputs.items()}, stats)
  np.testing.assert_allclose(got, _numpy_statistics_loss({k[0]: v for k, v in inputs.items()}, stats),
                             rtol=1e-5)


def test_batch_norm_prior_reads_each_layers_input_and_statistics():
  model = classifiers.PaperCNN(K, channels=(3, 4), dense_width=8)
  x = jax.random.uniform(jax.random.key(1), (6, *SHAPE), minval=-1, maxval=1)
  variables = model.init(jax.random.key(0), x[:1])
  (_, _), inputs = feature_stats.capture_batch_norm_inputs(model.apply, variables, x, train=False)
  assert sorted(inputs) == [("bn0",), ("bn1",)]
  # bn0's input is conv0's output on the images (the conv has no bias).
  conv0 = jax.lax.conv_general_dilated(x, variables["params"]["conv0"]["kernel"], (1, 1), "SAME",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(inputs[("bn0",)], conv0, atol=1e-5)
  assert inputs[("bn1",)].shape[-1] == 4
  # Running statistics equal to the batch's: zero loss. Move one channel of bn1's stored
  # mean by 0.5 and one of bn0's variances by 0.25: the loss is exactly 0.5 + 0.25.
  matched = {name[0]: dict(zip(("mean", "var"), feature_stats.layer_statistics(x_in)))
             for name, x_in in inputs.items()}
  ctx = lambda stats: steps.TermContext(images=x, logits=None, aux=None, batch=None,
                                        classifier_apply=steps.make_classifier_apply(model),
                                        classifier_variables={"params": variables["params"],
                                                              "batch_stats": stats},
                                        key=None, seen=x, bn_inputs=inputs)
  assert float(feature_stats.feature_statistics_term(ctx(matched))) < 1e-5
  moved = jax.tree.map(lambda v: v, matched)
  moved["bn1"]["mean"] = moved["bn1"]["mean"].at[2].add(0.5)
  moved["bn0"]["var"] = moved["bn0"]["var"].at[0].add(0.25)
  np.testing.assert_allclose(feature_stats.feature_statistics_term(ctx(moved)), 0.75, rtol=1e-4)


def test_feature_statistics_prior_needs_batch_norm():
  with pytest.raises(ValueError, match="batch-norm"):
    feature_stats.feature_statistics_loss({}, {})


def test_feature_statistics_term_in_the_inversion_step():
  gen, classifier, tx, state = _inversion_setup()
  batch = conditioning.sample_batch(jax.random.key(5), 8, K, NZ, gen.mode)
  config = default_config("digits")
  config.priors.feature_statistics = 0.1
  terms, weights = options.prior_terms(config)
  assert list(terms) == ["feature_statistics"]
  step = jax.jit(steps.make_inversion_step(gen, classifier, tx, extra_terms=terms))
  weighted = state.replace(loss_weights=steps.loss_weights(1.0, 4.0, 1.0, 1.0, **weights))
  new, m = step(weighted, batch, jax.random.key(3))
  assert float(m["loss_feature_statistics"]) > 0 and np.isfinite(float(m["grad_norm"]))


def test_new_terms_in_the_inversion_step_read_the_core_losses_features():
  gen, classifier, tx, state = _inversion_setup()
  batch = conditioning.sample_batch(jax.random.key(5), 8, K, NZ, gen.mode)
  config = default_config("digits")
  config.priors.update(class_cosine=2.0, sparsity=1.0, border=1.0)
  terms, weights = options.prior_terms(config)
  assert sorted(terms) == ["border", "class_cosine", "sparsity"]

  def spy(ctx):  # 0 when a term sees the features the core cosine loss reads
    return jnp.sum(jnp.abs(ctx.features - ctx.aux["penultimate"])) + (ctx.features is None)

  step = jax.jit(steps.make_inversion_step(gen, classifier, tx, extra_terms={**terms, "spy": spy},
                                           input_transform=transforms.make_input_transform(noise=0.2)))
  weighted = state.replace(loss_weights=steps.loss_weights(1.0, 4.0, 1.0, 1.0, spy=1.0, **weights))
  _, m = jax.block_until_ready(step(weighted, batch, jax.random.key(3)))
  assert all(np.isfinite(float(m[f"loss_{name}"])) for name in terms)
  assert float(m["loss_spy"]) == 0.0
  assert 0.0 < float(m["loss_sparsity"]) < 1.0 and np.isfinite(float(m["grad_norm"]))


def test_transforms_are_deterministic_and_change_the_image():
  image = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 12, 12, 1)), jnp.float32)
  assert transforms.make_input_transform() is None
  shift = transforms.make_input_transform(jitter=2.0, scale=0.1)
  a, b = shift(image, jax.random.key(1)), shift(image, jax.random.key(1))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, image)
  assert not np.allclose(a, shift(image, jax.random.key(2)))
  # No shift, no scaling: the identity.
  same = transforms.random_affine(image[0], jax.random.key(3), jitter=0.0, scale=0.0, flip=False)
  np.testing.assert_allclose(same, image[0], atol=1e-5)
  # Flips only: each image is itself or its mirror, and across keys both happen.
  flip = transforms.make_input_transform(flip=True)
  seen = set()
  for k in range(8):
    out = np.asarray(flip(image, jax.random.key(k)))
    for i in range(2):
      mirrored = np.allclose(out[i], image[i, :, ::-1], atol=1e-5)
      assert mirrored or np.allclose(out[i], image[i], atol=1e-5)
      seen.add(mirrored)
  assert seen == {True, False}
  # Pixels moved in from outside the frame are background (−1).
  blank = transforms.random_affine(jnp.full((8, 8, 1), -1.0), jax.random.key(4), jitter=3.0, scale=0.2,
                                   flip=False)
  np.testing.assert_allclose(blank, -1.0, atol=1e-5)


def test_noise_transform_adds_gaussian_noise_of_the_asked_std_after_the_affine_draws():
  image = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (64, 12, 12, 1)), jnp.float32)
  noisy = transforms.make_input_transform(noise=0.3)(image, jax.random.key(1))
  residual = np.asarray(noisy - image)
  # One std per image, uniform in [0, 0.3]: between them they span the range.
  stds = residual.reshape(64, -1).std(1)
  assert stds.min() < 0.05 and 0.25 < stds.max() < 0.31 and abs(stds.mean() - 0.15) < 0.03
  assert abs(residual.mean()) < 0.01
  # The affine draws are those of a run without noise: the difference is the noise alone.
  shift = transforms.make_input_transform(jitter=2.0)(image, jax.random.key(1))
  both = transforms.make_input_transform(jitter=2.0, noise=0.3)(image, jax.random.key(1))
  np.testing.assert_allclose(both - shift, residual, atol=1e-5)


def test_generator_blur_keeps_the_shape_and_removes_single_pixel_detail():
  rng = np.random.default_rng(0)
  checker = jnp.asarray(np.indices((12, 12)).sum(0) % 2 * 2.0 - 1.0)[None, :, :, None]
  blurred = layers.gaussian_blur(checker, 1.0)
  assert blurred.shape == checker.shape
  # Away from the repeated edges the checkerboard (±1) averages out.
  assert float(jnp.abs(blurred[:, 3:-3, 3:-3]).max()) < 0.1
  flat = jnp.full((1, 6, 6, 2), 0.7)
  np.testing.assert_allclose(layers.gaussian_blur(flat, 1.5), flat, rtol=1e-6)  # edges repeat
  np.testing.assert_allclose(layers.gaussian_kernel(1.0).sum(), 1.0, rtol=1e-6)
  gen = generator_module.ConditionedGenerator(K, (12, 12, 1), mode="label", width=4, latent_dim=5,
                                              embed_dim=4, blur=1.0)
  z = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
  y = jnp.array([0, 1, 2])
  variables = gen.init(jax.random.key(0), z, jax.nn.one_hot(y, K), y)
  images = gen.apply(variables, z, jax.nn.one_hot(y, K), y)
  assert images.shape == (3, 12, 12, 1) and np.all(np.abs(np.asarray(images)) <= 1.0)


def test_classifier_ensemble_matches_numpy_and_both_implementations():
  model = classifiers.PaperCNN(K, channels=(3, 4), dense_width=8)
  x = jax.random.uniform(jax.random.key(1), (4, *SHAPE), minval=-1, maxval=1)
  stacked = classifier_ensemble.stack_variables(
      [model.init(jax.random.key(s), x[:1]) for s in (0, 1, 2)])
  vmapped = classifier_ensemble.member_outputs(model, stacked, x, "vmap")[0]
  unrolled = classifier_ensemble.member_outputs(model, stacked, x, "unrolled")[0]
  assert vmapped.shape == (3, 4, K)
  np.testing.assert_allclose(vmapped, unrolled, atol=1e-5)
  p = jax.nn.softmax(jax.random.normal(jax.random.key(2), (4, K)))
  y = jnp.array([0, 3, 5, 9])
  logits = np.asarray(vmapped, np.float64)
  log_q = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  kl = np.mean(np.sum(np.asarray(p) * (np.log(np.asarray(p)) - log_q), -1))
  ce = np.mean(-log_q[:, np.arange(4), np.asarray(y)])
  np.testing.assert_allclose(classifier_ensemble.ensemble_loss(vmapped, p, y, 1.0, 4.0), kl + 4 * ce,
                             rtol=1e-4)
  # The KL at temperature 3 compares p with softmax(logits / 3); the CE is unchanged.
  log_q3 = logits / 3 - np.log(np.exp(logits / 3).sum(-1, keepdims=True))
  kl3 = np.mean(np.sum(np.asarray(p) * (np.log(np.asarray(p)) - log_q3), -1))
  np.testing.assert_allclose(classifier_ensemble.ensemble_loss(vmapped, p, y, 1.0, 4.0, 3.0),
                             kl3 + 4 * ce, rtol=1e-4)


def _numpy_same_label_cosine(features, labels):
  values = [features[i] @ features[j] / (np.linalg.norm(features[i]) * np.linalg.norm(features[j]))
            for i in range(len(features)) for j in range(len(features)) if i != j and labels[i] == labels[j]]
  return np.mean(values)


def test_members_class_cosine_matches_numpy_per_member_and_is_finite_at_zero():
  rng = np.random.default_rng(4)
  features = rng.normal(size=(3, 6, 5)).astype(np.float32)
  labels = np.array([0, 1, 0, 1, 1, 2])
  expected = np.mean([_numpy_same_label_cosine(f.astype(np.float64), labels) for f in features])
  np.testing.assert_allclose(classifier_ensemble.members_class_cosine(jnp.asarray(features), labels),
                             expected, rtol=1e-5)
  # Zero features (a dead member's ReLUs): finite value and gradient.
  value, grad = jax.value_and_grad(classifier_ensemble.members_class_cosine)(jnp.zeros((2, 6, 5)), labels)
  assert np.isfinite(float(value)) and np.all(np.isfinite(np.asarray(grad)))


def test_member_outputs_give_each_members_features_in_both_implementations():
  model = classifiers.PaperCNN(K, channels=(3, 4), dense_width=8)
  x = jax.random.uniform(jax.random.key(1), (4, *SHAPE), minval=-1, maxval=1)
  variables = [model.init(jax.random.key(s), x[:1]) for s in (0, 1)]
  stacked = classifier_ensemble.stack_variables(variables)
  for impl in ("vmap", "unrolled"):
    logits, features = classifier_ensemble.member_outputs(model, stacked, x, impl)
    for m, v in enumerate(variables):
      one_logits, aux = model.apply(v, x, train=False)
      np.testing.assert_allclose(logits[m], one_logits, atol=1e-5)
      np.testing.assert_allclose(features[m], np.asarray(aux["penultimate"]).reshape(4, -1), atol=1e-5)


def test_members_cosine_term_reaches_the_inversion_step_and_the_config():
  gen, classifier, tx, state = _inversion_setup()
  members = classifier_ensemble.stack_variables(
      [classifier.init(jax.random.key(s), jnp.zeros((1, *SHAPE))) for s in (7, 8)])
  term = classifier_ensemble.make_cosine_term([(classifier, members)], impl="unrolled")
  # The same value recomputed from the members' features of the batch the classifier saw.
  recompute = lambda ctx: classifier_ensemble.members_class_cosine(
      classifier_ensemble.member_outputs(classifier, members, ctx.seen, "vmap")[1], ctx.batch["y"])
  batch = conditioning.sample_batch(jax.random.key(5), 8, K, NZ, gen.mode)
  step = jax.jit(steps.make_inversion_step(gen, classifier, tx,
                                           extra_terms={"ensemble_class_cosine": term, "check": recompute}))
  weighted = state.replace(loss_weights=steps.loss_weights(1.0, 4.0, 1.0, 1.0, ensemble_class_cosine=1.0,
                                                           check=0.0))
  _, m = step(weighted, batch, jax.random.key(3))
  np.testing.assert_allclose(float(m["loss_ensemble_class_cosine"]), float(m["loss_check"]), rtol=1e-4)
  config = default_config("digits")
  config.priors.ensemble_class_cosine = 2.0
  with pytest.raises(ValueError, match="classifier_ensemble.workdirs"):
    validate(config)


def test_members_terms_sharing_one_pass_run_the_members_once_and_match_separate_passes():
  """With one `make_members_on_seen` the two members' terms trace each member once per
  step (one forward, one backward) and give the same loss, metrics and update as two
  separate passes."""
  gen, classifier, tx, state = _inversion_setup()
  members = classifier_ensemble.stack_variables(
      [classifier.init(jax.random.key(s), jnp.zeros((1, *SHAPE))) for s in (7, 8)])
  calls = []

  def counted_apply(variables, images):
    calls.append(1)  # once per member each time the step is traced
    return classifier.apply(variables, images, train=False)

  def terms(shared):
    kwargs = {"members_on_seen": classifier_ensemble.make_members_on_seen(
        [(counted_apply, members)], impl="unrolled")} if shared else {}
    return {"classifier_ensemble": classifier_ensemble.make_term(
                [(counted_apply, members)], alpha=1.0, beta=4.0, impl="unrolled", **kwargs),
            "ensemble_class_cosine": classifier_ensemble.make_cosine_term(
                [(counted_apply, members)], impl="unrolled", **kwargs)}

  batch = conditioning.sample_batch(jax.random.key(5), 8, K, NZ, gen.mode)
  weighted = state.replace(loss_weights=steps.loss_weights(
      1.0, 4.0, 1.0, 1.0, classifier_ensemble=3.0, ensemble_class_cosine=8.0))
  results = {}
  for shared in (True, False):
    calls.clear()
    step = jax.jit(steps.make_inversion_step(gen, classifier, tx, extra_terms=terms(shared)))
    results[shared] = step(weighted, batch, jax.random.key(3))
    assert len(calls) == (2 if shared else 4), (shared, len(calls))
  (shared_state, shared_m), (separate_state, separate_m) = results[True], results[False]
  for name in ("loss", "loss_classifier_ensemble", "loss_ensemble_class_cosine"):
    np.testing.assert_allclose(float(shared_m[name]), float(separate_m[name]), rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               shared_state.generator.params, separate_state.generator.params)


def test_group_by_architecture_stacks_equal_models_in_first_seen_order():
  cnn = classifiers.PaperCNN(K, channels=(3, 4), dense_width=8)
  mlp = classifiers.MLP(K, hidden=(6,))
  x = jnp.zeros((1, *SHAPE))
  v = {s: (cnn if s < 10 else mlp).init(jax.random.key(s), x) for s in (1, 2, 11, 3)}
  groups = classifier_ensemble.group_by_architecture(
      [(cnn, v[1]), (mlp, v[11]), (classifiers.PaperCNN(K, channels=(3, 4), dense_width=8), v[2]),
       (cnn, v[3])])
  assert [g.model for g in groups] == [cnn, mlp]
  assert jax.tree.leaves(groups[0].stacked)[0].shape[0] == 3
  assert jax.tree.leaves(groups[1].stacked)[0].shape[0] == 1
  jax.tree.map(lambda s, a: np.testing.assert_array_equal(s[1], a), groups[0].stacked, v[2])
  with pytest.raises(ValueError, match="at least one"):
    classifier_ensemble.group_by_architecture([])
  # One apply function for two shapes of variables cannot be stacked: named, not a stack error.
  apply = lambda variables, images: cnn.apply(variables, images, train=False)
  wider = classifiers.PaperCNN(K, channels=(5, 4), dense_width=8).init(jax.random.key(4), x)
  with pytest.raises(ValueError, match="different shapes"):
    classifier_ensemble.group_by_architecture([(apply, v[1]), (apply, wider)])


def test_mixed_architecture_members_average_over_every_member():
  """A CNN pair and an MLP of another feature width: the terms equal the mean over the
  three members of each member's own loss and within-class cosine, in both implementations."""
  cnn = classifiers.PaperCNN(K, channels=(3, 4), dense_width=8)
  mlp = classifiers.MLP(K, hidden=(6,))
  x0 = jnp.zeros((1, *SHAPE))
  members = [(cnn, cnn.init(jax.random.key(1), x0)), (mlp, mlp.init(jax.random.key(2), x0)),
             (cnn, cnn.init(jax.random.key(3), x0))]
  groups = classifier_ensemble.group_by_architecture(members)
  images = jax.random.uniform(jax.random.key(4), (8, *SHAPE), minval=-1, maxval=1)
  batch = {"p": jax.nn.softmax(jax.random.normal(jax.random.key(5), (8, K))),
           "y": jnp.array([0, 1, 0, 1, 2, 2, 0, 3])}
  ctx = steps.TermContext(images, None, None, batch, None, None, jax.random.key(6), seen=images)
  losses_each, cosines_each = [], []
  for model, variables in members:
    logits, aux = model.apply(variables, images, train=False)
    losses_each.append(classifier_ensemble.ensemble_loss(logits[None], batch["p"], batch["y"], 1.0, 4.0, 2.0))
    cosines_each.append(_numpy_same_label_cosine(np.asarray(aux["penultimate"], np.float64),
                                                 np.asarray(batch["y"])))
  for impl in ("vmap", "unrolled"):
    shared = classifier_ensemble.make_members_on_seen(groups, impl=impl)
    term = classifier_ensemble.make_term(groups, alpha=1.0, beta=4.0, impl=impl, kl_temperature=2.0,
                                         members_on_seen=shared)
    cosine = classifier_ensemble.make_cosine_term(groups, impl=impl, members_on_seen=shared)
    np.testing.assert_allclose(float(term(ctx)), np.mean(losses_each), rtol=1e-5)
    np.testing.assert_allclose(float(cosine(ctx)), np.mean(cosines_each), rtol=1e-4)
  # Relative weights follow their members into the groups: Σ w·loss / Σ w, and a member at
  # weight 0 does not count.
  weights, cosine_weights = [2.0, 1.0, 0.5], [1.0, 0.0, 3.0]
  weighted = classifier_ensemble.group_by_architecture(members, weights, cosine_weights)
  np.testing.assert_array_equal(weighted[0].weights, [2.0, 0.5])
  np.testing.assert_array_equal(weighted[1].cosine_weights, [0.0])
  shared = classifier_ensemble.make_members_on_seen(weighted, impl="unrolled")
  term_w = classifier_ensemble.make_term(weighted, alpha=1.0, beta=4.0, kl_temperature=2.0,
                                         members_on_seen=shared)
  cosine_w = classifier_ensemble.make_cosine_term(weighted, members_on_seen=shared)
  np.testing.assert_allclose(float(term_w(ctx)), np.dot(weights, losses_each) / sum(weights), rtol=1e-5)
  np.testing.assert_allclose(float(cosine_w(ctx)), np.dot(cosine_weights, cosines_each) / 4.0, rtol=1e-4)
  with pytest.raises(ValueError, match="one non-negative weight per member"):
    classifier_ensemble.group_by_architecture(members, [1.0, 2.0])
  with pytest.raises(ValueError, match="one non-negative weight per member"):
    classifier_ensemble.group_by_architecture(members, None, [1.0, -1.0, 1.0])
  # Finite gradient w.r.t. the images through both groups.
  grad = jax.grad(lambda im: cosine(ctx._replace(seen=im)) + term(ctx._replace(seen=im)))(images)
  assert np.all(np.isfinite(np.asarray(grad))) and float(jnp.abs(grad).sum()) > 0


def test_multi_classifier_term_in_the_inversion_step():
  gen, classifier, tx, state = _inversion_setup()
  members = classifier_ensemble.stack_variables(
      [classifier.init(jax.random.key(s), jnp.zeros((1, *SHAPE))) for s in (7, 8)])
  term = classifier_ensemble.make_term([(classifier, members)], alpha=1.0, beta=4.0, impl="unrolled")
  batch = conditioning.sample_batch(jax.random.key(5), 8, K, NZ, gen.mode)
  step = jax.jit(steps.make_inversion_step(gen, classifier, tx, extra_terms={"classifier_ensemble": term},
                                           input_transform=transforms.make_input_transform(jitter=1.0)))
  weighted = state.replace(loss_weights=steps.loss_weights(1.0, 4.0, 1.0, 1.0, classifier_ensemble=1.0))
  _, m = step(weighted, batch, jax.random.key(3))
  assert float(m["loss_classifier_ensemble"]) > 0 and np.isfinite(float(m["loss"]))


def test_kl_temperature_reaches_the_inversion_step():
  """The step's KL term is KL(p ‖ softmax(logits / τ)) of the logits the classifier gave:
  an extra term recomputes it from the same logits (weight 0)."""
  gen, classifier, tx, state = _inversion_setup()
  batch = conditioning.sample_batch(jax.random.key(5), 8, K, NZ, gen.mode)
  recompute = lambda ctx: jnp.mean(jax.vmap(losses.kl_divergence)(ctx.batch["p"], ctx.logits / 4.0))
  state = state.replace(loss_weights=steps.loss_weights(1.0, 4.0, 1.0, 1.0, check=0.0))
  for temperature in (4.0, 1.0):
    step = jax.jit(steps.make_inversion_step(gen, classifier, tx, extra_terms={"check": recompute},
                                             kl_temperature=temperature))
    _, m = step(state, batch, jax.random.key(3))
    matches = np.isclose(float(m["loss_kl"]), float(m["loss_check"]), rtol=1e-5)
    assert matches == (temperature == 4.0), (temperature, m["loss_kl"], m["loss_check"])


def test_member_weights_are_checked_against_the_workdirs(tmp_path):
  config = default_config("digits")
  config.classifier_ensemble.workdirs = (str(tmp_path),)
  (tmp_path / "config.json").write_text("{}")
  config.priors.classifier_ensemble = 1.0
  for field, value, match in (("weights", (1.0, 2.0), "one relative weight per"),
                              ("cosine_weights", (-1.0,), "non-negative numbers"),
                              ("weights", (0.0,), "not all 0 while priors.classifier_ensemble")):
    config.classifier_ensemble.weights = config.classifier_ensemble.cosine_weights = ()
    config.classifier_ensemble[field] = value
    with pytest.raises(ValueError, match=f"classifier_ensemble.{field}=.*{match}"):
      validate(config)
  config.classifier_ensemble.weights, config.classifier_ensemble.cosine_weights = (2.0,), (0.0,)
  validate(config)  # the cosine term is off, so its weights may all be 0


@pytest.mark.parametrize("field,value,match", [
    ("robustness.scale", 1.5, "robustness.scale"),
    ("priors.feature_statistics", -1.0, "priors.feature_statistics"),
    ("priors.classifier_ensemble", 1.0, "classifier_ensemble.workdirs"),
    ("pixel.batch_size", 1, "pixel.batch_size"),
])
def test_bad_faithful_fields_are_named(field, value, match):
  config = default_config("digits")
  section, name = field.split(".")
  config[section][name] = value
  with pytest.raises(ValueError, match=match):
    validate(config)


def test_pixel_baseline_runs_and_evaluates_on_a_tiny_config(tmp_path, capsys):
  cls, px = tmp_path / "cls", tmp_path / "px"
  assert cli.main(["train-classifier", "--config", DIGITS_TINY, "--workdir", str(cls)]) == 0
  args = ["pixel-invert", "--config", DIGITS_TINY, "--workdir", str(px), f"--config.init_from={cls}",
          "--config.priors.feature_statistics=0.05", "--config.priors.total_variation=0.1",
          "--config.robustness.jitter=1.0"]
  assert cli.main(args) == 0
  summary = json.loads((px / "summary.json").read_text())
  assert summary["images"] == 20 and summary["seconds_per_1000_images"] > 0
  with np.load(px / "images.npz") as f:
    assert f["images"].shape == (20, *data.info("digits").image_shape) and np.abs(f["images"]).max() <= 1.0
    assert sorted(np.bincount(f["labels"])) == [2] * 10
  batches = sorted((px / "batches").glob("*.npz"))
  assert len(batches) == 2
  mtime = batches[0].stat().st_mtime
  assert cli.main(args) == 0  # a rerun reuses the finished batches
  assert batches[0].stat().st_mtime == mtime
  capsys.readouterr()
  assert cli.main(["evaluate", "--workdir", str(px), "--num-per-class", "2", "--no-figures"]) == 0
  metrics = json.loads((px / "eval" / "metrics.json").read_text())
  assert metrics["kind"] == "pixel_inversion" and 0.0 <= metrics["target_accuracy"] <= 1.0
  assert len(metrics["target_accuracy_per_class"]) == 10


def test_presets_load_and_ablation_rows_turn_on_one_ingredient_each():
  from jaxinv.config import load_config
  from jaxinv.runs import faithful_ablation
  preset = load_config(str(REPO / "configs" / "faithful.py:fashion_mnist"))
  validate(preset)
  assert preset.robustness.flip  # garments may be mirrored
  preset.priors.total_variation, preset.priors.l2 = 0.5, 0.0
  rows = faithful_ablation.rows_for(preset)
  assert rows[0] == "paper" and rows[-2:] == ["all", "pixels"]
  assert "robustness" in rows and "total_variation" in rows and "l2" not in rows  # what the preset turns on
  paper = faithful_ablation.row_config(preset, "paper")
  assert paper.priors.total_variation == 0 and paper.priors.feature_statistics == 0
  assert paper.robustness.jitter == 0 and not paper.robustness.flip
  assert paper.generator.mode == "vector_matrix" and preset.generator.mode == "label" and "mode" in rows
  preset.generator.temperature = 0.2
  assert "temperature" in faithful_ablation.rows_for(preset)
  assert faithful_ablation.row_config(preset, "paper").generator.temperature == 1.0  # the paper's
  assert faithful_ablation.row_config(preset, "temperature").generator.temperature == 0.2
  tv = faithful_ablation.row_config(preset, "total_variation")
  assert tv.priors.total_variation == 0.5 and tv.robustness.jitter == 0 and not tv.robustness.flip
  assert faithful_ablation.row_config(preset, "all").to_dict() == preset.to_dict()
  assert faithful_ablation.row_config(preset, "temperature").generator.mode == "vector_matrix"
  mnist = load_config(str(REPO / "configs" / "faithful.py:mnist"))
  assert mnist.inversion.kl_temperature > 1 and "kl_temperature" in faithful_ablation.rows_for(mnist)
  assert faithful_ablation.row_config(mnist, "paper").inversion.kl_temperature == 1.0
  with pytest.raises(ValueError, match="Unknown ablation row"):
    faithful_ablation.row_config(preset, "nope")


@pytest.mark.parametrize("arg", ["mnist", "mnist,tiny", "fashion_mnist,tiny"])
def test_faithful_presets_build_validate_and_document_their_commands(arg):
  from jaxinv.config import load_config
  path = REPO / "configs" / "faithful.py"
  config = load_config(f"{path}:{arg}")
  validate(config)
  if arg.endswith("tiny"):
    assert config.inversion.steps <= 50 and config.classifier.epochs == 1
  doc = path.read_text()
  assert all(c in doc for c in ("jaxinv invert", "jaxinv pixel-invert", "jaxinv ablate-priors", "Expected"))
  with pytest.raises(ValueError, match="needs the dataset"):
    load_config(str(path))


def test_robust_prior_variant_needs_the_robust_classifier_and_names_unknown_variants(tmp_path):
  from jaxinv.config import load_config
  path = REPO / "configs" / "faithful.py"
  plain, robust = load_config(f"{path}:mnist"), load_config(f"{path}:mnist,robust_prior,tiny")
  assert plain.priors.classifier_ensemble == 0 and plain.priors.ensemble_class_cosine == 0
  assert robust.priors.classifier_ensemble > 0 and robust.priors.ensemble_class_cosine > 0
  assert plain.generator.accept_threshold == 0 and robust.generator.accept_threshold > 0
  assert robust.inversion.steps <= 50 and robust.inversion.kl_temperature == plain.inversion.kl_temperature
  # The variant's longer runs are not laid over `tiny` (its steps stay a test's).
  assert load_config(f"{path}:mnist,robust_prior").inversion.steps > plain.inversion.steps
  assert load_config(f"{path}:fashion_mnist,robust_prior,tiny").inversion.steps <= 50
  with pytest.raises(ValueError, match="adversarial_epsilon"):  # the fix: which classifier to give
    validate(robust)
  (tmp_path / "config.json").write_text("{}")
  robust.classifier_ensemble.workdirs = (str(tmp_path),)
  validate(robust)
  with pytest.raises(ValueError, match="unknown variant"):
    load_config(f"{path}:mnist,robust")


def test_ablation_table_reports_the_held_out_verifier_beside_the_selection_one():
  from jaxinv.runs import faithful_ablation

  row = {"row": "paper", "steps": 10, "train_s": 1.0, "seconds_per_1000_images": 0.5,
         "verifier_accuracy": 0.9, "held_out_verifier_accuracy": 0.25, "held_out_knn_recall": 0.125,
         "real_within_class_cosine": 0.7, "held_out_verifier_real_within_class_cosine": 0.625}
  record = {"dataset": "mnist", "seed": 0, "eval_seed": 0, "num_per_class": 10, "rows": [row]}
  assert "held-out" not in faithful_ablation.markdown_table(record)
  table = faithful_ablation.markdown_table({**record, "held_out_verifier": "/v2"})
  header, _, paper, real = table.splitlines()[:4]
  assert "held-out acc" in header and "held-out k-NN recall" in header
  assert "0.250" in paper and "0.125" in paper and "0.900" in paper
  assert "0.625" in real  # the held-out verifier's cosine of real test images
