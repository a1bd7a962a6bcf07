"""`jaxinv evaluate` and `jaxinv ablate` end to end on the tiny digits config, and report.html."""

import json
import re
import struct
from pathlib import Path

import jax
import numpy as np
import pytest

from conftest import REPO
from jaxinv import acceptance, cli, data, report, sampling
from jaxinv.classifier import from_linen
from jaxinv.runs import ablation, inversion
from jaxinv.runs import classifier as classifier_run

DIGITS_TINY = str(REPO / "configs" / "digits.py:tiny")
VERIFIER_TINY = str(REPO / "configs" / "verifier.py:digits,tiny")


def test_render_embeds_figures_and_escapes():
  page = report.render("t<1>", [("m", ("name", "value"), [("acc", 0.5), ("nan", float("nan"))])],
                       [("cap & more", b"\x89PNG fake")], notes=["a note"])
  assert "t&lt;1&gt;" in page and "cap &amp; more" in page
  assert "<td>0.5000</td>" in page and "<td>nan</td>" in page
  assert re.findall(r"src='([^']*)'", page) == [report.png_data_uri(b"\x89PNG fake")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("eval")
  assert cli.main(["train-classifier", "--config", DIGITS_TINY, "--workdir", str(root / "cls")]) == 0
  assert cli.main(["train-classifier", "--config", VERIFIER_TINY, "--workdir", str(root / "ver")]) == 0
  # The ablation's rows are the inversion runs the evaluation tests use.
  assert cli.main(["ablate", "--config", DIGITS_TINY, "--workdir", str(root / "abl"),
                   f"--config.init_from={root / 'cls'}", "--config.inversion.steps=4",
                   "--verifier", str(root / "ver"), "--modes", "vector_matrix",
                   "--num-per-class", "6"]) == 0
  return root


def _tensorboard_tags(logdir: Path) -> set:
  """Tags in tensorboardX event files, read with its own Event proto (TFRecord framing)."""
  from tensorboardX.proto import event_pb2
  tags = set()
  for path in logdir.glob("events.out.tfevents.*"):
    raw = path.read_bytes()
    pos = 0
    while pos < len(raw):
      (length,) = struct.unpack("<Q", raw[pos:pos + 8])
      event = event_pb2.Event.FromString(raw[pos + 12:pos + 12 + length])
      tags.update(v.tag for v in event.summary.value)
      pos += 12 + length + 4
  return tags


def test_evaluate_writes_report_figures_and_tensorboard(runs, capsys):
  inv, out = runs / "abl" / "vector_matrix-cos_orth", runs / "evaluation"
  assert cli.main(["evaluate", "--workdir", str(inv), "--verifier", str(runs / "ver"),
                   "--num-per-class", "8", "--out", str(out)]) == 0
  assert f"report: {out / 'report.html'}" in capsys.readouterr().out
  result = json.loads((out / "metrics.json").read_text())
  for key in ("target_accuracy", "verifier_accuracy", "generated_within_class_cosine",
              "real_within_class_cosine", "generated_gram_deviation", "knn_precision", "knn_recall",
              "generated_nn_distance", "generated_nn_ssim"):
    assert key in result, key
  assert len(result["verifier_accuracy_per_class"]) == 10 and result["knn_feature_space"] == "verifier"
  assert result["verifier"]["model"] == "mlp" and result["target_classifier"]["model"] == "cnn"
  # Confusion: each requested class's 8 images, its diagonal the per-class accuracy.
  for who in ("target", "verifier"):
    counts = np.asarray(result[f"{who}_confusion"])
    assert counts.shape == (10, 10) and (counts.sum(1) == 8).all(), who
    np.testing.assert_allclose(np.diag(counts) / 8, result[f"{who}_accuracy_per_class"])
  for name in ("samples_fixed_latents", "interpolation", "pca", "decision_boundary", "tsne",
               "nearest_training", "loss_curves"):
    assert (out / f"{name}.png").stat().st_size > 1000, name
  page = (out / "report.html").read_text()
  # Self-contained: every referenced source is embedded or an existing file.
  refs = re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", page)
  assert len(refs) == 7
  assert all(r.startswith("data:image/png;base64,") or (out / r).is_file() for r in refs)
  assert "verifier_accuracy" in page and "What the verifier calls each requested class" in page
  tags = _tensorboard_tags(out / "tensorboard")
  assert {"train/loss", "eval/target_accuracy", "eval/knn_recall", "eval/pca"} <= tags


def test_ablation_table_and_resume(runs, capsys):
  abl = runs / "abl"
  record = json.loads((abl / "ablation.json").read_text())
  assert [r["row"] for r in record["rows"]] == ["vector_matrix-cos_orth", "vector_matrix-no_cos_orth"]
  assert [r["cos_orth"] for r in record["rows"]] == [True, False]
  off = json.loads((abl / "vector_matrix-no_cos_orth" / "config.json").read_text())
  assert off["inversion"]["gamma"] == 0.0 and off["inversion"]["delta"] == 0.0
  table = (abl / "ablation.md").read_text()
  assert table.count("| vector_matrix |") == 2 and "real test images" in table
  # Rerunning resumes: finished rows are neither retrained nor re-evaluated.
  stamps = {p: p.stat().st_mtime_ns for p in [*abl.glob("*/metrics.jsonl"), *abl.glob("*/eval/metrics.json")]}
  assert len(stamps) == 4
  assert cli.main(["ablate", "--config", DIGITS_TINY, "--workdir", str(abl),
                   f"--config.init_from={runs / 'cls'}", "--config.inversion.steps=4",
                   "--verifier", str(runs / "ver"), "--modes", "vector_matrix",
                   "--num-per-class", "6"]) == 0
  assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
  assert "| vector_matrix | no |" in capsys.readouterr().out


def test_bad_inputs_are_named(runs, capsys):
  # A verifier of the target's own architecture is refused.
  assert cli.main(["evaluate", "--workdir", str(runs / "abl" / "vector_matrix-cos_orth"),
                   "--verifier", str(runs / "cls"), "--no-figures"]) == 2
  assert "another architecture" in capsys.readouterr().err
  with pytest.raises(ValueError, match="modes must be among"):
    ablation.rows(cli._load_config(DIGITS_TINY, {}), modes=("hot",))
  assert cli.main(["evaluate", "--workdir", str(runs / "nowhere")]) == 2
  assert "config.json" in capsys.readouterr().err


def test_evaluate_with_acceptance_keeps_only_accepted_images(runs, tmp_path):
  inv, out = runs / "inv_60", runs / "evaluation_accepted"
  # 60 steps: the 4-step generator's 0s, 1s and 3s never reach 0.05 on the tiny classifier.
  # The run asks for rejection by its member (here the target itself, at weight 0 in training).
  assert cli.main(["invert", "--config", DIGITS_TINY, "--workdir", str(inv),
                   f"--config.init_from={runs / 'cls'}", "--config.inversion.steps=60",
                   "--config.generator.accept_threshold=0.05",
                   f'--config.classifier_ensemble.workdirs=["{runs / "cls"}"]']) == 0
  assert cli.main(["evaluate", "--workdir", str(inv), "--verifier", str(runs / "ver"),
                   "--num-per-class", "4", "--no-figures", "--out", str(out)]) == 0
  result = json.loads((out / "metrics.json").read_text())
  assert result["accept_threshold"] == 0.05 and result["accept_by"] == [str(runs / "cls")]
  assert len(result["acceptance_per_class"]) == 10
  assert all(0 < rate <= 1 for rate in result["acceptance_per_class"])
  assert min(result["acceptance_per_class"]) < 1 and result["accept_drawn"] > 40  # it rejected
  # The images it judged are the accepted draws of the same key: every one has its label's
  # probability >= 0.05 under the accepting classifier, and the target's accuracy is theirs.
  generator, stacked, rates, config = inversion.restore_generators(inv)
  variables = jax.tree.map(lambda x: np.asarray(x)[0], stacked)
  generator = generator.clone(dropout_rate=float(rates[0]))
  model, model_variables, _, _ = classifier_run.restore(runs / "cls")
  judge = from_linen(model, model_variables)
  labels = sampling.labels_for(4, range(10))
  drawn = acceptance.sample_accepted(generator, variables, labels, jax.random.key(0),
                                     acceptance.confident([judge], 0.05), batch_size=500,
                                     dropout=config.generator.dropout_at_sampling)
  assert (acceptance.label_probability([judge], drawn.images, labels) >= 0.05).all()
  predicted = np.asarray(judge.apply_fn(judge.params, drawn.images)[0]).argmax(-1)
  np.testing.assert_allclose(result["target_accuracy_per_class"],
                             [np.mean(predicted[labels == k] == k) for k in range(10)])
  assert result["acceptance_per_class"] == drawn.acceptance_per_class
  # `jaxinv sample` draws the same images; --accept-threshold 0 the plain ones.
  assert cli.main(["sample", "--workdir", str(inv), "--num-per-class", "4", "--out",
                   str(tmp_path / "accepted.npz")]) == 0
  assert cli.main(["sample", "--workdir", str(inv), "--num-per-class", "4", "--out",
                   str(tmp_path / "plain.npz"), "--accept-threshold", "0"]) == 0
  with np.load(tmp_path / "accepted.npz") as f:
    np.testing.assert_array_equal(f["images"], drawn.images)
    np.testing.assert_array_equal(f["labels"], labels)
    np.testing.assert_allclose(f["acceptance_per_class"], [drawn.acceptance_per_class])
  with np.load(tmp_path / "plain.npz") as f:
    plain = sampling.sample(generator, variables, labels, jax.random.key(0),
                            dropout=config.generator.dropout_at_sampling)
    np.testing.assert_array_equal(f["images"], plain)
    assert "acceptance_per_class" not in f


def test_bad_acceptance_inputs_are_named(runs, capsys):
  inv = str(runs / "abl" / "vector_matrix-cos_orth")
  # The tiny run has no robust members to accept by.
  assert cli.main(["evaluate", "--workdir", inv, "--no-figures", "--accept-threshold", "0.5"]) == 2
  assert "--accept-by" in capsys.readouterr().err
  # The verifier may not choose the images it judges.
  assert cli.main(["evaluate", "--workdir", inv, "--verifier", str(runs / "ver"), "--no-figures",
                   "--accept-by", str(runs / "ver"), "--accept-threshold", "0.5"]) == 2
  assert "would judge the images it chose" in capsys.readouterr().err
  # The 4-step generator's 0s never reach 0.5 on the tiny classifier: the class is named.
  assert cli.main(["evaluate", "--workdir", inv, "--no-figures", "--num-per-class", "2",
                   "--accept-by", str(runs / "cls"), "--accept-threshold", "0.5"]) == 2
  err = capsys.readouterr().err
  assert "class 0 has 0 of the 2 images" in err and "--accept-threshold with a lower value" in err
  assert cli.main(["evaluate", "--workdir", inv, "--no-figures", "--accept-threshold", "1"]) == 2
  assert "[0, 1)" in capsys.readouterr().err
  assert cli.main(["evaluate", "--workdir", inv, "--no-figures", "--accept-by", str(runs / "cls")]) == 2
  assert "--accept-threshold" in capsys.readouterr().err
  assert cli.main(["sample", "--workdir", inv, "--num-per-class", "2", "--out",
                   str(runs / "never.npz"), "--accept-threshold", "0.5"]) == 2
  assert "--accept-by" in capsys.readouterr().err and not (runs / "never.npz").exists()


def test_evaluate_several_seeds_writes_each_and_their_mean(runs, capsys):
  inv, out = runs / "abl" / "vector_matrix-cos_orth", runs / "evaluation_seeds"
  assert cli.main(["evaluate", "--workdir", str(inv), "--verifier", str(runs / "ver"),
                   "--num-per-class", "6", "--no-figures", "--out", str(out), "--seed", "1", "2"]) == 0
  assert str(out / "metrics.json") in capsys.readouterr().out
  each = [json.loads((out / f"seed_{s}" / "metrics.json").read_text()) for s in (1, 2)]
  assert [r["seed"] for r in each] == [1, 2]
  # Each seed is the single-seed evaluation with that seed.
  assert cli.main(["evaluate", "--workdir", str(inv), "--verifier", str(runs / "ver"),
                   "--num-per-class", "6", "--no-figures", "--out", str(runs / "seed_2_alone"),
                   "--seed", "2"]) == 0
  alone = json.loads((runs / "seed_2_alone" / "metrics.json").read_text())
  assert alone["generated_within_class_cosine"] == each[1]["generated_within_class_cosine"]
  assert alone["verifier_accuracy_per_class"] == each[1]["verifier_accuracy_per_class"]
  mean = json.loads((out / "metrics.json").read_text())
  assert mean["seeds"] == [1, 2] and "seed" not in mean
  assert mean["per_seed"] == ["seed_1/metrics.json", "seed_2/metrics.json"]
  assert each[0]["generated_within_class_cosine"] != each[1]["generated_within_class_cosine"]
  for key in ("generated_within_class_cosine", "knn_recall", "verifier_accuracy_min_class",
              "target_accuracy"):
    values = [r[key] for r in each]
    assert mean[key] == pytest.approx(np.mean(values)), key
    if values[0] != values[1]:
      assert mean["spread"][key] == [min(values), max(values)], key
  np.testing.assert_allclose(mean["verifier_accuracy_per_class"],
                             np.mean([r["verifier_accuracy_per_class"] for r in each], axis=0))
  assert mean["verifier"] == each[0]["verifier"] and mean["num_per_class"] == 6
  assert mean["wall_time_s"] == pytest.approx(each[0]["wall_time_s"] + each[1]["wall_time_s"], abs=0.02)
  # A seed given twice is refused before anything is drawn.
  assert cli.main(["evaluate", "--workdir", str(inv), "--no-figures", "--out", str(runs / "twice"),
                   "--seed", "1", "1"]) == 2
  assert "distinct seeds" in capsys.readouterr().err and not (runs / "twice").exists()


def test_mean_over_seeds_keeps_equal_fields_and_averages_numbers():
  from jaxinv.runs.evaluation import mean_over_seeds
  a = {"seed": 1, "dataset": "mnist", "acc": 0.5, "per_class": [1.0, 0.0], "flag": True,
       "record": {"step": 1}, "drawn": 10, "wall_time_s": 1.5, "confusion": [[2, 0], [1, 1]]}
  b = {"seed": 3, "dataset": "mnist", "acc": 1.0, "per_class": [0.0, 0.5], "flag": True,
       "record": {"step": 2}, "drawn": 20, "wall_time_s": 2.0, "confusion": [[1, 1], [0, 2]]}
  mean = mean_over_seeds([a, b])
  assert mean["seeds"] == [1, 3] and mean["dataset"] == "mnist" and mean["flag"] is True
  assert mean["acc"] == 0.75 and mean["drawn"] == 15.0 and mean["per_class"] == [0.5, 0.25]
  assert mean["record"] == [{"step": 1}, {"step": 2}] and mean["wall_time_s"] == 3.5
  assert mean["confusion"] == [[1.5, 0.5], [0.5, 1.5]]
  assert mean["spread"] == {"acc": [0.5, 1.0], "drawn": [10.0, 20.0]}


def test_members_of_two_architectures_invert_and_average(runs):
  """`classifier_ensemble.workdirs` may name runs of different architectures (the CNN
  target and the MLP verifier here): each term is the mean of the one-member terms, and
  an inversion with both runs."""
  from jaxinv import steps
  from jaxinv.runs import options
  overrides = {"priors.classifier_ensemble": "2.0", "priors.ensemble_class_cosine": "3.0",
               "init_from": str(runs / "cls")}

  def terms(*members):
    names = ",".join(f'"{runs / m}"' for m in members)
    config = cli._load_config(DIGITS_TINY, {**overrides, "classifier_ensemble.workdirs": f"[{names}]"})
    return options.classifier_ensemble_term(config)

  images = jax.random.uniform(jax.random.key(0), (12, *data.info("digits").image_shape), minval=-1,
                              maxval=1)
  batch = {"p": jax.nn.softmax(jax.random.normal(jax.random.key(1), (12, 10))),
           "y": np.arange(12) % 3}
  ctx = steps.TermContext(images, None, None, batch, None, None, jax.random.key(2), seen=images)
  (mixed, weights), (cnn, _), (mlp, _) = terms("cls", "ver"), terms("cls"), terms("ver")
  assert weights == {"classifier_ensemble": 2.0, "ensemble_class_cosine": 3.0}
  for name in ("classifier_ensemble", "ensemble_class_cosine"):
    one_each = (float(cnn[name](ctx)) + float(mlp[name](ctx))) / 2
    np.testing.assert_allclose(float(mixed[name](ctx)), one_each, rtol=1e-5)
    assert float(cnn[name](ctx)) != pytest.approx(float(mlp[name](ctx)))  # both members count
  inv = runs / "inv_mixed"
  assert cli.main(["invert", "--config", DIGITS_TINY, "--workdir", str(inv), "--config.inversion.steps=4",
                   "--config.inversion.log_every=1", *[f"--config.{k}={v}" for k, v in overrides.items()],
                   f'--config.classifier_ensemble.workdirs=["{runs / "cls"}","{runs / "ver"}"]']) == 0
  last = json.loads((inv / "metrics.jsonl").read_text().splitlines()[-1])
  assert np.isfinite(last["loss_classifier_ensemble"]) and last["loss_ensemble_class_cosine"] != 0


def test_a_classifier_of_other_images_is_refused_by_role_and_fix(runs):
  """Verifiers, accepting classifiers and members share one check: the digits classifier
  cannot serve for CIFAR-10's images."""
  with pytest.raises(ValueError, match=r"The verifier in .*cls was trained on digits, not on "
                                       r"cifar10's images and classes; train one"):
    classifier_run.restore_for(runs / "cls", data.info("cifar10"), "The verifier in", "train one")
  model, _, config, _ = classifier_run.restore_for(runs / "cls", data.info("digits"), "x", "y")
  assert config.dataset == "digits" and model == classifier_run.restore(runs / "cls")[0]
