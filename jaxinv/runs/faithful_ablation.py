"""What each faithful-inversion ingredient buys: `run(config, workdir, verifier_dir, rows)`.

`config` is a preset with every ingredient on (configs/faithful.py). Each row
starts from it with every ingredient off (the paper's method) and turns one back
on; "all" keeps them all; "pixels" is the DeepInversion pixel baseline with all
of them. Every row is a normal workdir `WORKDIR/<row>/` (a rerun resumes or skips
it), evaluated into its `eval/` with the same metrics, verifier and seed; the
table goes to `WORKDIR/faithful_ablation.md` / `.json`, with the time per 1 000
images of each row (generators: training time and the time to sample 1 000).
"""

import json
import logging
import math
import time

import jax
import ml_collections
from etils.epath import Path

from jaxinv import config as config_lib
from jaxinv import data, paths, sampling
from jaxinv.runs import evaluation, inversion, pixel_inversion

log = logging.getLogger(__name__)

# Row name → the config fields it turns back on (from the preset).
INGREDIENTS = {
    "total_variation": ("priors.total_variation",),
    "l2": ("priors.l2",),
    "pixel_range": ("priors.pixel_range",),
    "ink": ("priors.ink",),
    "pixel_cosine": ("priors.pixel_cosine",),
    "mode_seeking": ("priors.mode_seeking",),
    "class_cosine": ("priors.class_cosine",),
    "sparsity": ("priors.sparsity",),
    "border": ("priors.border",),
    "saturation": ("priors.saturation",),
    "noise": ("robustness.noise",),
    "blur": ("generator.blur",),
    "margin": ("priors.margin",),
    "feature_statistics": ("priors.feature_statistics",),
    "robustness": ("robustness.jitter", "robustness.scale", "robustness.flip"),
    "classifier_ensemble": ("priors.classifier_ensemble",),
    "ensemble_class_cosine": ("priors.ensemble_class_cosine",),
    "upsample": ("generator.upsample",),
    "mode": ("generator.mode",),
    "temperature": ("generator.temperature",),
    "kl_temperature": ("inversion.kl_temperature",),
}
# The paper's method: vector_matrix conditioning at temperature 1, the KL at temperature 1,
# resize-convolution generator, no flips.
_OFF = {"generator.upsample": "resize", "generator.mode": "vector_matrix", "robustness.flip": False,
        "generator.temperature": 1.0, "inversion.kl_temperature": 1.0}
ROWS = ("paper", *INGREDIENTS, "all", "pixels")


def _set(config, dotted: str, value) -> None:
  section, name = dotted.split(".")
  config[section][name] = value


def _ingredient_on(preset, name: str) -> bool:
  return any(config_lib.config_get(preset, f) != _OFF.get(f, 0.0) for f in INGREDIENTS[name])


def row_config(preset, row: str) -> ml_collections.ConfigDict:
  if row not in ROWS:
    raise ValueError(f"Unknown ablation row {row!r}; choose among {ROWS}.")
  config = ml_collections.ConfigDict(preset.to_dict())
  if row not in ("all", "pixels"):
    for name, fields in INGREDIENTS.items():
      if name != row:
        for f in fields:
          _set(config, f, _OFF.get(f, 0.0))
  config_lib.validate(config)
  return config


def rows_for(preset, rows=None) -> list[str]:
  """The requested rows, or: paper, each ingredient the preset turns on, all, pixels."""
  if rows:
    return list(rows)
  return ["paper", *[n for n in INGREDIENTS if _ingredient_on(preset, n)], "all", "pixels"]


def _sampling_seconds_per_1000(row_dir: Path) -> float:
  generator, variables, config = inversion.restore(row_dir)
  labels = sampling.labels_for(100, range(data.info(config.dataset).num_classes))
  key = jax.random.key(0)
  sampling.sample(generator, variables, labels[:500], key)  # compile
  began = time.perf_counter()
  sampling.sample(generator, variables, labels, key)
  return (time.perf_counter() - began) * 1000.0 / len(labels)


def _evaluate(row_dir: Path, verifier_dir, out_name: str, *, num_per_class: int, seed: int) -> dict:
  """The row's metrics against one verifier, from `row_dir/out_name` when already computed
  with the same images per class and seed."""
  metrics_path = row_dir / out_name / "metrics.json"
  saved = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
  evaluated_with = saved.get("num_per_class_requested", saved.get("num_per_class"))
  same_verifier = (saved.get("verifier") or {}).get("workdir") == (
      None if verifier_dir is None else paths.absolute(verifier_dir))
  if evaluated_with == num_per_class and saved.get("seed") == seed and same_verifier:
    return saved
  return evaluation.run(row_dir, verifier_dir, out_dir=row_dir / out_name, num_per_class=num_per_class,
                        seed=seed, figures=False, tensorboard=False)


def run_row(config, row: str, row_dir: Path, verifier_dir, *, num_per_class: int, seed: int,
            held_out_dir=None) -> dict:
  if row == "pixels":
    if not (row_dir / "images.npz").is_file():
      pixel_inversion.run(config, row_dir)
    summary = json.loads((row_dir / "summary.json").read_text())
    timing = {"train_s": None, "seconds_per_1000_images": summary["seconds_per_1000_images"],
              "steps": config.pixel.steps}
  else:
    summary_path = row_dir / "summary.json"
    finished = summary_path.is_file() and \
        json.loads(summary_path.read_text()).get("steps") == config.inversion.steps
    if not finished:
      inversion.run(config, row_dir)
    summary = json.loads(summary_path.read_text())
    timing = {"train_s": summary["train_wall_time_s"],
              "seconds_per_1000_images": round(_sampling_seconds_per_1000(row_dir), 3),
              "steps": config.inversion.steps}
  result = _evaluate(row_dir, verifier_dir, "eval", num_per_class=num_per_class, seed=seed)
  out = {"row": row, **timing, **{k: result.get(k) for k in FIELDS}}
  if held_out_dir is not None:  # the verifier nothing was chosen on (docs/faithful.md)
    held_out = _evaluate(row_dir, held_out_dir, "eval_held_out", num_per_class=num_per_class, seed=seed)
    out.update({f"held_out_{k}": held_out.get(k) for k in VERIFIER_FIELDS})
  return out


FIELDS = ("target_accuracy", "target_accuracy_min_class", "verifier_accuracy",
          "verifier_accuracy_min_class", "generated_within_class_cosine", "real_within_class_cosine",
          "verifier_generated_within_class_cosine", "verifier_real_within_class_cosine",
          "knn_precision", "knn_recall", "generated_nn_ssim")
# What depends on the verifier: reported for the held-out one too (prefix held_out_).
VERIFIER_FIELDS = ("verifier_accuracy", "verifier_accuracy_min_class",
                   "verifier_generated_within_class_cosine", "verifier_real_within_class_cosine",
                   "knn_precision", "knn_recall")


def run(preset, workdir, verifier_dir=None, *, rows=None, num_per_class: int = 200,
        seed: int = 0, held_out_dir=None) -> list[dict]:
  """Every row against `verifier_dir` (the verifier settings are chosen with) and, if given,
  `held_out_dir` (a second verifier of another family, reported beside it)."""
  workdir = Path(workdir)
  table = []
  for row in rows_for(preset, rows):
    log.info("faithful ablation row %s", row)
    table.append(run_row(row_config(preset, row), row, workdir / row, verifier_dir,
                         num_per_class=num_per_class, seed=seed, held_out_dir=held_out_dir))
  # Rows run earlier (other --rows) stay in the table, in the order of ROWS.
  saved = workdir / "faithful_ablation.json"
  if saved.is_file():
    done = {r["row"] for r in table}
    table += [r for r in json.loads(saved.read_text())["rows"] if r["row"] not in done]
    table.sort(key=lambda r: ROWS.index(r["row"]))
  record = {"dataset": preset.dataset, "classifier": preset.init_from, "verifier": verifier_dir,
            "held_out_verifier": held_out_dir,
            "seed": preset.seed, "eval_seed": seed, "num_per_class": num_per_class, "rows": table}
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "faithful_ablation.json").write_text(json.dumps(record, indent=2) + "\n")
  (workdir / "faithful_ablation.md").write_text(markdown_table(record))
  return table


_COLUMNS = (("target acc", "target_accuracy"), ("target min class", "target_accuracy_min_class"),
            ("verifier acc", "verifier_accuracy"), ("verifier min class", "verifier_accuracy_min_class"),
            ("cos target ↓", "generated_within_class_cosine"),
            ("cos verifier ↓", "verifier_generated_within_class_cosine"),
            ("k-NN prec", "knn_precision"), ("k-NN recall", "knn_recall"), ("NN SSIM", "generated_nn_ssim"))


def _cell(value, digits: int = 3) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "–"
  return f"{value:.{digits}f}"


_HELD_OUT_COLUMNS = (("held-out acc", "held_out_verifier_accuracy"),
                     ("held-out min class", "held_out_verifier_accuracy_min_class"),
                     ("cos held-out ↓", "held_out_verifier_generated_within_class_cosine"),
                     ("held-out k-NN prec", "held_out_knn_precision"),
                     ("held-out k-NN recall", "held_out_knn_recall"))


def markdown_table(record: dict) -> str:
  columns = _COLUMNS + (_HELD_OUT_COLUMNS if record.get("held_out_verifier") else ())
  lines = ["| row | steps | train s | s / 1 000 images | " + " | ".join(c for c, _ in columns) + " |",
           "|---|---:|---:|---:|" + "---:|" * len(columns)]
  for row in record["rows"]:
    lines.append(f"| {row['row']} | {row['steps']} | {_cell(row['train_s'], 1)} | "
                 f"{_cell(row['seconds_per_1000_images'], 2)} | "
                 + " | ".join(_cell(row.get(f)) for _, f in columns) + " |")
  if record["rows"]:
    first = record["rows"][0]
    real = {"generated_within_class_cosine": first.get("real_within_class_cosine"),
            "verifier_generated_within_class_cosine": first.get("verifier_real_within_class_cosine"),
            "held_out_verifier_generated_within_class_cosine":
                first.get("held_out_verifier_real_within_class_cosine")}
    lines.append("| *real test images* | | | | "
                 + " | ".join(_cell(real.get(f)) for _, f in columns) + " |")
  lines.append("")
  lines.append(f"{record['dataset']}, training seed {record['seed']}, evaluation seed "
               f"{record['eval_seed']}, {record['num_per_class']} images per class.")
  return "\n".join(lines) + "\n"
