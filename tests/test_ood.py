"""OOD detection: metrics against hand-computed cases, the score sign convention, and the
train–invert–exclude loop, `ood evaluate` and `ood score` end to end on the tiny config."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from jaxinv import cli, garbage_sources, metrics, ood, paths, plotting
from jaxinv import config as config_lib
from jaxinv.models import classifiers
from jaxinv.runs import classifier as classifier_run
from jaxinv.runs import ood as ood_run

OOD_TINY = str(REPO / "configs" / "ood_mnist.py:tiny")
# The embedded digits (28×28 like MNIST) load in 0.2 s instead of 4 s: the loop is the same.
TRAIN_TINY = ["ood", "train", "--config", OOD_TINY, "--config.dataset=digits"]


# --- metrics, by hand ---

def test_auroc_counts_ties_as_half():
  # Pairs (in, out) with out > in: (.1,.5) (.1,.9) (.5,.9); (.5,.5) is a tie: 3.5 / 4.
  assert metrics.auroc([0.1, 0.5], [0.5, 0.9]) == pytest.approx(0.875)


def test_sign_convention_of_the_metrics():
  # Higher score = more OOD: OOD scored above ID is a perfect detector, below a reversed one.
  assert metrics.auroc([0.0, 1.0], [2.0, 3.0]) == 1.0
  assert metrics.fpr_at_tpr([0.0, 1.0], [2.0, 3.0]) == 0.0
  assert metrics.aupr_in([0.0, 1.0], [2.0, 3.0]) == 1.0
  assert metrics.aupr_out([0.0, 1.0], [2.0, 3.0]) == 1.0
  assert metrics.auroc([2.0, 3.0], [0.0, 1.0]) == 0.0
  assert metrics.fpr_at_tpr([2.0, 3.0], [0.0, 1.0]) == 1.0


def test_aupr_in_and_out_by_hand():
  s_in, s_out = [0.1, 0.4, 0.5], [0.35, 0.8]
  # ID positives ranked by −score: .1 P, .35 N, .4 P, .5 P, .8 N → precisions at the hits 1, 2/3, 3/4.
  assert metrics.aupr_in(s_in, s_out) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
  # OOD positives ranked by score: .8 P, .5 N, .4 N, .35 P, .1 N → precisions 1, 2/4.
  assert metrics.aupr_out(s_in, s_out) == pytest.approx((1 + 0.5) / 2)


def test_aupr_groups_tied_scores():
  # OOD positives: .9 P; tie at .5 {P, N} counts as one threshold: recall 1, precision 2/3.
  assert metrics.aupr_out([0.5, 0.1], [0.5, 0.9]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_fpr_at_95_tpr_by_hand_with_a_tie():
  s_in = np.arange(1.0, 21.0)  # 20 ID scores: accepting ≤ 19 accepts 19/20 = 95 %
  # OOD: 19 ties with the threshold (accepted), 0 is below it, 19.5 and 25 are rejected.
  assert metrics.fpr_at_tpr(s_in, [19.0, 19.5, 25.0, 0.0]) == pytest.approx(0.5)
  assert metrics.fpr_at_tpr(s_in, [19.0, 19.5, 25.0, 0.0], tpr=1.0) == pytest.approx(0.75)
  m = metrics.ood_metrics(s_in, [19.0, 19.5, 25.0, 0.0])
  assert set(m) == {"auroc", "aupr_in", "aupr_out", "fpr95"} and m["fpr95"] == pytest.approx(0.5)


def test_detection_rate_and_accuracy():
  assert metrics.detection_rate([10, 3, 10, 10], garbage_class=10) == 0.75
  assert metrics.accuracy([1, 2, 10], [1, 2, 3]) == pytest.approx(2 / 3)


def test_metrics_reject_bad_input():
  with pytest.raises(ValueError, match="both sets"):
    metrics.auroc([], [1.0])
  with pytest.raises(ValueError, match="NaN"):
    metrics.fpr_at_tpr([np.nan, 1.0], [1.0])
  with pytest.raises(ValueError, match="tpr"):
    metrics.fpr_at_tpr([1.0], [1.0], tpr=0.0)


# --- scores ---

def test_every_score_is_higher_for_ood_looking_outputs():
  confident = np.array([[12.0, 0.0, 0.0, -1.0]])  # in-distribution-like: one class dominates
  flat = np.array([[0.1, 0.0, 0.05, -0.1]])  # OOD-like: nothing dominates
  for fn in (ood.msp_score, ood.energy_score, ood.uncertainty_score,
             lambda l: ood.odin_score(l, 1000.0)):
    assert fn(flat)[0] > fn(confident)[0]
  garbage_low = np.array([[8.0, 0.0, 0.0, -4.0]])  # last column = garbage
  garbage_high = np.array([[0.0, 0.0, 0.0, 6.0]])
  assert ood.garbage_score(garbage_high)[0] > ood.garbage_score(garbage_low)[0]
  assert ood.uncertainty_score(garbage_high)[0] < 0.1  # a confident garbage call is "certain"
  assert ood.id_msp_score(garbage_high)[0] > ood.id_msp_score(garbage_low)[0]
  assert ood.id_msp_score(flat)[0] > ood.id_msp_score(confident)[0]
  # Pinned end to end: confident = ID, flat = OOD gives a perfect detector for every score.
  logits_in = np.array([[12.0, 0, 0, -1], [9.0, 1, 0, 0], [0, 10.0, 0, 0]])
  logits_out = np.array([[0.1, 0, 0.05, -0.1], [1.0, 0.5, 0.9, 0.7]])
  for fn in (ood.msp_score, ood.energy_score, ood.uncertainty_score):
    assert metrics.auroc(fn(logits_in), fn(logits_out)) == 1.0


def test_scores_match_their_definitions():
  logits = np.random.default_rng(0).normal(0, 3, (50, 11))
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  n = 11
  k = p.argmax(1)
  delta = np.eye(n)[k]
  ue = 1 - ((p - 1 / n) ** 2).sum(1) / ((delta - 1 / n) ** 2).sum(1)  # method notes §6
  np.testing.assert_allclose(ood.uncertainty_score(logits), ue, atol=1e-12)
  np.testing.assert_allclose(ood.uncertainty_score(np.zeros((1, n))), [1.0])  # uniform
  np.testing.assert_allclose(ood.msp_score(logits), -np.log(p.max(1)), rtol=1e-10)
  np.testing.assert_allclose(ood.garbage_score(logits), np.log(p[:, -1] / (1 - p[:, -1])), rtol=1e-8)
  np.testing.assert_allclose(ood.id_msp_score(logits), -np.log(p[:, :-1].max(1)), rtol=1e-10)
  np.testing.assert_allclose(ood.energy_score(logits), -np.log(np.exp(logits).sum(1)), rtol=1e-10)
  np.testing.assert_allclose(ood.odin_score(logits, 10.0), ood.msp_score(logits / 10.0))


def test_garbage_energy_score_matches_its_definition():
  rng = np.random.default_rng(1)
  members = [rng.normal(0, 3, (40, 11)) for _ in range(3)]
  plain = [rng.normal(0, 3, (40, 10)) for _ in range(2)]
  probs = [np.exp(m) / np.exp(m).sum(1, keepdims=True) for m in members]
  p_garbage = np.mean([p[:, -1] for p in probs], axis=0)
  energy = np.mean([-np.log(np.exp(e).sum(1)) for e in plain], axis=0)
  for weight in (0.0, 0.5, 2.0):
    np.testing.assert_allclose(ood.garbage_energy_score(members, plain, weight),
                               np.log(p_garbage / (1 - p_garbage)) + weight * energy, rtol=1e-9, atol=1e-9)
  # Weight 0 is the garbage score of the members' mean probabilities.
  np.testing.assert_allclose(ood.garbage_energy_score(members, plain, 0.0),
                             ood.garbage_score(ood.mean_probability_logits(members)), atol=1e-12)
  # One plain classifier: its energy score.
  np.testing.assert_allclose(ood.garbage_energy_score(members, plain[:1], 1.5),
                             ood.garbage_score(ood.mean_probability_logits(members))
                             + 1.5 * ood.energy_score(plain[0]), rtol=1e-9, atol=1e-9)
  # Confident classifiers stay finite and ranked (float32 softmax would round them to 0 and 1).
  sure = np.array([[900.0, 0.0, 0.0], [950.0, 0.0, 0.0]])
  score = ood.garbage_energy_score([sure, sure], [sure[:, :2]], 1.0)
  assert np.all(np.isfinite(score)) and score[1] < score[0]
  for bad in (-1.0, float("nan")):
    with pytest.raises(ValueError, match="energy_weight"):
      ood.garbage_energy_score(members, plain, bad)
  with pytest.raises(ValueError, match="energy logits"):
    ood.garbage_energy_score(members, [plain[0][:30]], 0.5)
  with pytest.raises(ValueError, match="energy logits"):
    ood.garbage_energy_score(members, [], 0.5)


def test_scores_do_not_saturate_for_confident_outputs():
  # In float32 both max-softmax values are exactly 1.0; the scores still rank them.
  a, b = np.array([[40.0, 0.0, 0.0]]), np.array([[50.0, 0.0, 0.0]])
  assert float(jax.nn.softmax(jnp.float32(a))[0, 0]) == float(jax.nn.softmax(jnp.float32(b))[0, 0]) == 1.0
  for fn in (ood.msp_score, ood.uncertainty_score, ood.id_msp_score):
    assert fn(a)[0] > fn(b)[0] > 0
  assert ood.garbage_score(np.array([[0.0, 0.0, 40.0]]))[0] < ood.garbage_score(np.array([[0.0, 0.0, 50.0]]))[0]


def test_odin_perturbation_raises_confidence():
  model = classifiers.build_classifier("mlp", 10, hidden=(32,))
  x = jax.random.uniform(jax.random.key(1), (16, 8, 8, 1), minval=-1, maxval=1)
  variables = model.init(jax.random.key(0), x)
  plain = np.asarray(model.apply(variables, x, train=False)[0])
  np.testing.assert_allclose(ood.odin_logits(model, variables, x, temperature=1000.0, epsilon=0.0),
                             plain, rtol=1e-5, atol=1e-5)
  perturbed = ood.odin_logits(model, variables, x, temperature=1000.0, epsilon=1e-3)
  # The step follows the gradient of each image's own confidence: every score drops.
  assert np.all(ood.odin_score(perturbed, 1000.0) < ood.odin_score(plain, 1000.0))


def test_mean_probability_logits_are_the_log_of_the_mean_softmax():
  rng = np.random.default_rng(0)
  members = [rng.normal(0, 3, (5, 4)) for _ in range(3)]
  mean = np.mean([ood.softmax(m) for m in members], axis=0)
  combined = ood.mean_probability_logits(members)
  np.testing.assert_allclose(np.exp(combined), mean, rtol=1e-12)
  np.testing.assert_allclose(ood.softmax(combined), mean, rtol=1e-12)
  np.testing.assert_allclose(ood.mean_probability_logits(members[:1]),
                             members[0] - np.log(np.exp(members[0]).sum(1, keepdims=True)), atol=1e-12)
  # Confident members: the small probabilities survive (float32 softmax would round them to 0).
  sure = np.array([[0.0, 800.0], [0.0, 900.0]])
  assert np.all(np.isfinite(ood.mean_probability_logits([sure, sure + 10])))
  with pytest.raises(ValueError, match="one shape"):
    ood.mean_probability_logits([members[0], members[0][:, :3]])


def test_class_weights_balanced_and_garbage_multiplier():
  labels = np.array([0, 0, 0, 1, 2, 2])  # counts 3, 1, 2; class 2 = garbage
  w = ood_run.class_weights(labels, 3, "balanced", garbage_weight=2.0)
  np.testing.assert_allclose(w, [6 / 9, 6 / 3, 2 * 6 / 6], rtol=1e-6)
  np.testing.assert_allclose(ood_run.class_weights(labels, 3, "uniform", 0.5), [1, 1, 0.5])


def test_classifier_step_with_example_weights():
  import optax
  from jaxinv import steps
  model = classifiers.build_classifier("mlp", 3, hidden=(8,), dropout_rate=0.0)
  x = jax.random.uniform(jax.random.key(0), (6, 4, 4, 1), minval=-1, maxval=1)
  y = jnp.array([0, 1, 2, 0, 1, 2], jnp.int32)
  tx = optax.sgd(0.0)
  state = steps.init_train_state(model.init(jax.random.key(1), x), tx)
  step = jax.jit(steps.make_classifier_step(model, tx))
  key = jax.random.key(2)
  _, plain = step(state, {"image": x, "label": y}, key)
  _, ones = step(state, {"image": x, "label": y, "weight": jnp.full(6, 3.0)}, key)
  _, only_first = step(state, {"image": x, "label": y, "weight": jnp.eye(6)[0]}, key)
  np.testing.assert_allclose(ones["loss"], plain["loss"], rtol=1e-6)  # Σ w·CE / Σ w
  logits = model.apply({"params": state.params}, x[:1], train=False)[0]
  np.testing.assert_allclose(only_first["loss"], -jax.nn.log_softmax(logits[0])[0], rtol=1e-5)


def test_synthetic_sets_and_figures():
  images = ood.gaussian_images(0, 5, (28, 28, 1), 0.5)
  assert images.shape == (5, 28, 28, 1) and images.min() >= -1 and images.max() <= 1
  np.testing.assert_array_equal(ood.gaussian_images(0, 5, (28, 28, 1), 0.5), images)
  np.testing.assert_array_equal(ood.flipped(images)[:, 0], images[:, -1])
  np.testing.assert_array_equal(ood.inverted(images), -images)
  fig = plotting.garbage_rounds([("noise", images), ("round 0", images[:3])])
  assert len(fig.axes) == 2 * 5
  fig = plotting.score_histograms({"a": np.arange(5.0), "b": np.ones(5)},
                                  {"x": {"a": np.arange(3.0), "b": np.zeros(3)},
                                   "y": {"a": np.ones(4), "b": np.ones(4)}}, log_x=("b",))
  assert len(fig.axes) == 4 and fig.axes[1].get_ylabel() == "" and fig.axes[2].get_ylabel() == "log10 b"


def test_gaussian_blur_of_a_point_is_the_separable_kernel():
  image = np.zeros((1, 15, 15, 1))
  image[0, 7, 7, 0] = 1.0
  sigma = 1.5
  r = np.arange(-7, 8)
  taps = np.exp(-0.5 * (r / sigma) ** 2)
  taps[np.abs(r) > np.ceil(3 * sigma)] = 0.0  # the blur truncates at 3 sigma
  taps /= taps.sum()
  np.testing.assert_allclose(ood.gaussian_blur(image, sigma)[0, :, :, 0], np.outer(taps, taps), atol=1e-12)
  np.testing.assert_array_equal(ood.gaussian_blur(image, 0.0), image)


def test_smooth_noise_has_its_std_and_grows_smoother_with_sigma():
  a = ood.smooth_noise_images([0, 1], 40, (28, 28, 1), 0.5, (0, 4))
  np.testing.assert_array_equal(a, ood.smooth_noise_images([0, 1], 40, (28, 28, 1), 0.5, (0, 4)))
  assert a.dtype == np.float32 and a.min() >= -1 and a.max() <= 1
  unclipped = ood.smooth_noise_images([0, 1], 40, (28, 28, 1), 0.1, (0, 4))  # too small to clip
  np.testing.assert_allclose(unclipped.std(axis=(1, 2, 3)), 0.1, rtol=1e-4)
  neighbour_corr = lambda x: np.mean([np.corrcoef(i[:-1].ravel(), i[1:].ravel())[0, 1] for i in x])
  assert abs(neighbour_corr(a[:20])) < 0.1  # sigma 0: white
  assert neighbour_corr(a[20:]) > 0.9  # sigma 4: smooth


def test_ood_config_fields_are_validated():
  config = config_lib.default_config("mnist", "tiny")
  config.ood.class_weighting = "inverse"
  config.ood.samples_per_class = 0
  config.ood.noise_blur = (1.0, -2.0)
  with pytest.raises(ValueError) as err:
    config_lib.validate(config)
  for field in ("ood.class_weighting", "ood.samples_per_class", "ood.noise_blur"):
    assert field in str(err.value)
  config = config_lib.default_config("mnist", "tiny")
  config.ood.shape_images = -1
  config.ood.pixel_inversions_per_class = -3
  config.ood.pixel_inversion_lr = 0.0
  config.ood.detector_rounds = config.ood.rounds + 2  # the loop trains rounds + 1 classifiers
  with pytest.raises(ValueError) as err:
    config_lib.validate(config)
  for field in ("ood.shape_images", "ood.pixel_inversions_per_class", "ood.pixel_inversion_lr",
                "ood.detector_rounds"):
    assert field in str(err.value)
  for bad in ((), ("shapes", "shapes"), ("noise",)):
    config = config_lib.default_config("mnist", "tiny")
    config.ood.pixel_inversion_starts = bad
    with pytest.raises(ValueError, match="ood.pixel_inversion_starts"):
      config_lib.validate(config)
  for bad in ((), ("jigsaw", "jigsaw"), ("mirror",)):
    config = config_lib.default_config("mnist", "tiny")
    config.ood.shifted_transforms = bad
    with pytest.raises(ValueError, match="ood.shifted_transforms"):
      config_lib.validate(config)
  config = config_lib.default_config("mnist", "tiny")
  config.ood.shifted_images = -1
  with pytest.raises(ValueError, match="ood.shifted_images"):
    config_lib.validate(config)
  for field, bad in (("shifted_from_round", -1), ("shifted_from_round", config.ood.rounds + 1),
                     ("energy_weight", -0.5)):
    config = config_lib.default_config("mnist", "tiny")
    config.ood[field] = bad
    with pytest.raises(ValueError, match=f"ood.{field}"):
      config_lib.validate(config)
  assert config_lib.SHIFT_TRANSFORMS == garbage_sources.SHIFT_TRANSFORMS


def test_seed_images_end_with_shifted_training_images():
  config = config_lib.default_config("digits", "tiny")
  plain = ood_run.seed_images(config)
  config.ood.shifted_images = 12
  config.ood.shifted_transforms = ("rotate90", "jigsaw")
  train_x, _ = classifier_run.load_split(config, "train")
  seeded = ood_run.seed_images(config, train_x)
  np.testing.assert_array_equal(seeded[:len(plain)], plain)  # the other sources are as before
  np.testing.assert_array_equal(seeded[len(plain):], garbage_sources.shifted_images(
      [config.seed, 0x7366], train_x, 12, ("rotate90", "jigsaw")))
  np.testing.assert_array_equal(ood_run.seed_images(config), seeded)  # loads the split itself


def test_shifted_images_join_the_garbage_from_their_round_on(tmp_path):
  config = config_lib.default_config("digits", "tiny")
  config.ood.shifted_images = 12
  config.ood.shifted_transforms = ("rotate90",)
  config.ood.shifted_from_round = 1
  seed = ood_run.seed_images(config)
  garbage = np.full((5, *seed.shape[1:]), 0.25, np.float32)
  ood_run.round_dir(tmp_path, 0).mkdir(parents=True)
  paths.save_npz(ood_run.round_dir(tmp_path, 0) / "garbage.npz", images=garbage,
                 labels=np.zeros(5, np.int32))
  np.testing.assert_array_equal(ood_run.garbage_before(config, tmp_path, 0, seed), seed[:-12])
  np.testing.assert_array_equal(ood_run.garbage_before(config, tmp_path, 1, seed),
                                np.concatenate([seed, garbage]))
  config.ood.shifted_from_round = 0
  np.testing.assert_array_equal(ood_run.garbage_before(config, tmp_path, 0, seed), seed)


def test_a_shift_the_images_cannot_take_stops_the_loop_before_any_training(tmp_path):
  config = config_lib.default_config("digits", "tiny")
  config.ood.shifted_images = 8
  config.ood.shifted_transforms = ("permute_channels",)  # the digits have one channel
  with pytest.raises(ValueError, match="permute_channels.*one channel"):
    ood_run.run(config, tmp_path / "run")
  assert not (tmp_path / "run" / "baseline").exists()


def test_pixel_inversion_starts_interleave_the_named_kinds():
  from jaxinv import garbage_sources, sampling
  config = config_lib.default_config("mnist", "tiny")
  assert tuple(config.ood.pixel_inversion_starts) == ("shapes",)
  count, shape = 24, (28, 28, 1)
  # Shapes alone: the draw earlier runs made (same key), so they resume and evaluate as made.
  np.testing.assert_array_equal(ood_run.pixel_inversion_starts(config, 3, count),
                                garbage_sources.shape_images([config.seed, 0x7069, 3], count, shape))
  config.ood.pixel_inversion_starts = ("shapes", "strokes")
  config_lib.validate(config)
  starts = ood_run.pixel_inversion_starts(config, 3, count)
  assert starts.shape == (count, *shape) and np.abs(starts).max() <= 1.0
  np.testing.assert_array_equal(starts[0::2], garbage_sources.shape_images([config.seed, 0x7069, 3], count // 2, shape))
  np.testing.assert_array_equal(starts[1::2], garbage_sources.stroke_images([config.seed, 0x7069, 3, 1], count // 2, shape))
  # labels_for lists the classes in blocks: an even block per class gets both kinds equally.
  labels = sampling.labels_for(4, range(6))
  for c in range(6):
    assert sorted(np.flatnonzero(labels == c) % 2) == [0, 0, 1, 1]
  np.testing.assert_array_equal(starts, ood_run.pixel_inversion_starts(config, 3, count))  # seeded
  assert not np.array_equal(starts, ood_run.pixel_inversion_starts(config, 4, count))  # per round


def test_saved_ood_configs_from_before_the_extra_garbage_load_without_it(tmp_path):
  # A run saved before ood.shape_images / ood.pixel_inversions_per_class / ood.detector_rounds
  # existed made no such garbage and was one classifier: loading its config must not give it
  # today's defaults (evaluate redraws the seed and restores the detector from them).
  config = config_lib.default_config("mnist")
  stored = json.loads(config.to_json())
  for name in ("shape_images", "pixel_inversions_per_class", "detector_rounds"):
    del stored["ood"][name]
  (tmp_path / "config.json").write_text(json.dumps(stored))
  old = config_lib.load_json(tmp_path / "config.json")
  assert old.ood.shape_images == 0 and old.ood.pixel_inversions_per_class == 0
  assert old.ood.detector_rounds == 1  # the final classifier alone, as evaluated then
  assert old.ood.pixel_inversion_steps == config.ood.pixel_inversion_steps  # harmless ones: default
  config_lib.save_json(config, tmp_path / "config.json")
  new = config_lib.load_json(tmp_path / "config.json")
  assert new.ood.shape_images == config.ood.shape_images > 0
  assert new.ood.pixel_inversions_per_class == config.ood.pixel_inversions_per_class > 0


# --- end to end on the tiny config ---

@pytest.fixture(scope="module")
def ood_run_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("ood") / "run"
  assert cli.main([*TRAIN_TINY, "--workdir", str(root)]) == 0
  return root


def test_loop_writes_rounds_and_resumes(ood_run_dir):
  config = config_lib.load_json(ood_run_dir / "config.json")
  k1 = 11
  with np.load(ood_run_dir / "rounds/000/garbage.npz") as f:
    images, labels, source = f["images"], f["labels"], f["source"]
  per_source = {ood_run.SOURCE_GENERATOR: config.ood.samples_per_class,
                ood_run.SOURCE_PIXELS: config.ood.pixel_inversions_per_class}
  assert images.shape == (k1 * sum(per_source.values()), 28, 28, 1)
  for code, per_class in per_source.items():  # all K+1 classes inverted by both
    assert per_class > 0
    np.testing.assert_array_equal(np.bincount(labels[source == code], minlength=k1), per_class)
  assert np.abs(images).max() <= 1.0
  r0 = json.loads((ood_run_dir / "rounds/000/summary.json").read_text())
  r1 = json.loads((ood_run_dir / "rounds/001/summary.json").read_text())
  assert r0["inverted_added"] == k1 * config.ood.samples_per_class
  assert r0["pixel_inverted_added"] == k1 * config.ood.pixel_inversions_per_class
  # Round 1 trains on the seed (noise and shapes) plus round 0's inversions.
  seed_count = config.ood.noise_images + config.ood.shape_images
  assert config.ood.shape_images > 0
  assert r0["garbage_trained_on"] == seed_count
  assert r1["garbage_trained_on"] == seed_count + len(images)
  assert r1["class_weights"][-1] < r0["class_weights"][-1]  # balanced: more garbage, lower weight
  assert (ood_run_dir / "baseline/summary.json").is_file()
  for r in (0, 1):
    assert (ood_run_dir / f"rounds/00{r}/classifier/checkpoints").is_dir()
  # Resume: drop round 0's garbage and round 1 entirely; the finished phases are restored
  # from their checkpoints (nothing retrains) and resampling gives the same images.
  import shutil
  (ood_run_dir / "rounds/000/garbage.npz").unlink()
  (ood_run_dir / "rounds/000/summary.json").unlink()
  shutil.rmtree(ood_run_dir / "rounds/001")
  lines = (ood_run_dir / "rounds/000/generator/metrics.jsonl").read_text()
  assert cli.main([*TRAIN_TINY, "--workdir", str(ood_run_dir)]) == 0
  with np.load(ood_run_dir / "rounds/000/garbage.npz") as f:
    np.testing.assert_array_equal(f["images"], images)
  assert (ood_run_dir / "rounds/000/generator/metrics.jsonl").read_text() == lines
  assert json.loads((ood_run_dir / "rounds/000/summary.json").read_text()) == r0
  assert json.loads((ood_run_dir / "rounds/001/summary.json").read_text()) == r1


def test_evaluate_writes_table_and_figures(ood_run_dir, capsys):
  assert cli.main(["ood", "evaluate", "--workdir", str(ood_run_dir), "--sets", "gaussian,inverted"]) == 0
  assert "| gaussian (64) | garbage |" in capsys.readouterr().out
  result = json.loads((ood_run_dir / "ood_eval.json").read_text())
  assert set(result["sets"]) == {"gaussian", "inverted"}
  for entry in result["sets"].values():
    assert set(entry["scores"]) == set(ood.SCORES)
    assert 0.0 <= entry["detection_rate"] <= 1.0
    for m in entry["scores"].values():
      assert 0.0 <= m["auroc"] <= 1.0 and 0.0 <= m["fpr95"] <= 1.0
  assert 0.0 <= result["id_accuracy"] <= 1.0
  for name in ("ood_table.md", "score_histograms.png", "garbage_rounds.png"):
    assert (ood_run_dir / name).is_file()


def test_score_command_on_a_small_file(ood_run_dir, tmp_path, capsys):
  images = ood.uniform_images(3, 7, (28, 28, 1))
  path = tmp_path / "mine.npz"
  np.savez(path, images=images)
  out = tmp_path / "scores.npz"
  assert cli.main(["ood", "score", "--workdir", str(ood_run_dir), "--images", str(path),
                   "--out", str(out)]) == 0
  with np.load(out) as f:
    scores = {k: f[k] for k in f.files}
  for k in (*ood.SCORES, "garbage_probability", "prediction", "baseline_prediction"):
    assert scores[k].shape == (7,), k
  detector = ood_run.restore(ood_run_dir)
  direct = ood_run.score(detector, images)
  for k in ood.SCORES:
    np.testing.assert_allclose(scores[k], direct[k])
  # The detector is the last ood.detector_rounds classifiers, their probabilities averaged.
  assert len(detector.variables) == detector.config.ood.detector_rounds == 2
  members = [ood.softmax(ood_run.logits_of(detector.model, v, images)) for v in detector.variables]
  assert not np.allclose(members[0], members[1])
  np.testing.assert_allclose(scores["garbage_probability"], np.mean(members, 0)[:, -1], rtol=1e-5, atol=1e-7)
  # garbage_energy: the members' garbage log-odds plus the weight times the baseline's energy.
  base = ood_run.logits_of(detector.baseline_model, detector.baseline_variables, images)
  np.testing.assert_allclose(
      scores["garbage_energy"],
      scores["garbage"] + detector.config.ood.energy_weight * ood.energy_score(base), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(scores["energy"], ood.energy_score(base), rtol=1e-6, atol=1e-6)
  # The garbage score is a monotone transform of the garbage probability.
  order = np.argsort(scores["garbage"])
  assert np.all(np.diff(scores["garbage_probability"][order]) >= 0)
  # Bad input: a clear error and exit status 2.
  np.savez(path, images=np.zeros((2, 32, 32, 3), np.float32))
  assert cli.main(["ood", "score", "--workdir", str(ood_run_dir), "--images", str(path),
                   "--out", str(out)]) == 2
  assert "expected N×28×28×1" in capsys.readouterr().err
  np.savez(path, pixels=images)
  assert cli.main(["ood", "score", "--workdir", str(ood_run_dir), "--images", str(path),
                   "--out", str(out)]) == 2
  assert "no `images` array" in capsys.readouterr().err


def test_round_classifiers_and_the_per_round_table(ood_run_dir, capsys, monkeypatch):
  import runpy
  config = config_lib.load_json(ood_run_dir / "config.json")
  rounds = config.ood.rounds
  _, every = ood_run.round_classifiers(ood_run_dir, range(rounds + 1))
  detector = ood_run.restore(ood_run_dir)
  for mine, theirs in zip(every[-config.ood.detector_rounds:], detector.variables):
    jax.tree.map(np.testing.assert_array_equal, mine, theirs)
  assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, every[0], every[-1])))
  with pytest.raises(FileNotFoundError, match="round 9 of .* has not trained"):
    ood_run.round_classifiers(ood_run_dir, [9])
  script = REPO / "benchmarks/ood_rounds.py"
  import jaxinv.cpu  # the benchmark switches the CPU machinery on, as the command does: not past this test
  monkeypatch.setattr(jaxinv.cpu, "_on", jaxinv.cpu.enabled())
  monkeypatch.setattr("sys.argv", ["ood_rounds.py", "--workdir", str(ood_run_dir),
                                   "--sets", "gaussian,inverted", "--last", "2"])
  runpy.run_path(str(script), run_name="__main__")
  lines = capsys.readouterr().out.splitlines()
  rows = [line for line in lines if line.startswith("| ") and not line.startswith("| round")
          and not line.startswith("| mean")]
  assert len(rows) == rounds + 1 + 2  # every round alone, then the last 1 and 2 rounds
  assert rows[-1].startswith("| 2 (config) |")
  for row in rows:
    accuracy, *sets = [cell.strip() for cell in row.strip("|").split("|")][1:]
    assert 0.0 <= float(accuracy) <= 100.0 and len(sets) == 2
    auroc, fpr, detection = (float(x) for x in sets[0].split(" / "))
    assert 0.0 <= auroc <= 1.0 and 0.0 <= fpr <= 100.0 and 0.0 <= detection <= 100.0
  monkeypatch.setattr("sys.argv", ["ood_rounds.py", "--workdir", str(ood_run_dir), "--sets", "flipped",
                                   "--last", "1", "--split", "train", "--max-images", "50"])
  runpy.run_path(str(script), run_name="__main__")
  held_out = capsys.readouterr().out
  assert f"{config.dataset} in-distribution, 50 train images" in held_out
  rows = [line for line in held_out.splitlines() if line.startswith("| ")
          and not line.startswith(("| round", "| mean"))]
  assert len(rows) == rounds + 1 + 1 and rows[-1].startswith("| 1 |")
  for row in rows:
    accuracy, flipped = [cell.strip() for cell in row.strip("|").split("|")][1:]
    assert 0.0 <= float(accuracy) <= 100.0 and 0.0 <= float(flipped.split(" / ")[0]) <= 1.0
  # Energy weight 0 is the detector's garbage score: the same AUROC as its "(config)" row.
  monkeypatch.setattr("sys.argv", ["ood_rounds.py", "--workdir", str(ood_run_dir), "--sets", "flipped",
                                   "--last", "2", "--energy-weights", f"0,{config.ood.energy_weight:g}"])
  runpy.run_path(str(script), run_name="__main__")
  lines = capsys.readouterr().out.splitlines()
  cells = lambda line: [cell.strip() for cell in line.strip("|").split("|")]
  config_row = next(line for line in lines if line.startswith("| 2 (config) |"))
  header = next(i for i, line in enumerate(lines) if line.startswith("| energy weight"))
  weight_rows = lines[header + 2:]
  assert [cells(line)[0] for line in weight_rows] == ["0", f"{config.ood.energy_weight:g} (config)"]
  assert cells(weight_rows[0])[1].split(" / ")[0] == cells(config_row)[2].split(" / ")[0]
  assert 0.0 <= float(cells(weight_rows[1])[1].split(" / ")[0]) <= 1.0
