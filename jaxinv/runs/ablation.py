"""The ablation behind the paper's claim: one generator per conditioning mode,
with and without the cosine and orthogonality losses, all inverting the same
classifier with the same seed; `run(config, workdir, verifier_dir)`.

Each row is a normal inversion workdir `WORKDIR/<mode>-<losses>/` (rerunning
resumes an interrupted row and skips finished ones) evaluated into its `eval/`;
the table goes to `WORKDIR/ablation.md` and `WORKDIR/ablation.json`.
"""

import json
import logging
import math

import ml_collections
from etils.epath import Path

from jaxinv import config as config_lib
from jaxinv import paths
from jaxinv.runs import evaluation, inversion

ABLATION_MODES = ("label", "vector", "matrix", "vector_matrix")
log = logging.getLogger(__name__)


def rows(config, modes=ABLATION_MODES) -> list[tuple[str, ml_collections.ConfigDict]]:
  """`(name, config)` per row: each mode with the config's γ, δ and with γ = δ = 0."""
  if config.inversion.gamma == 0 and config.inversion.delta == 0:
    raise ValueError("The ablation compares the cosine and orthogonality losses on and off; set "
                     "inversion.gamma and/or inversion.delta above 0 for the 'on' rows.")
  unknown = [m for m in modes if m not in ABLATION_MODES]
  if unknown or not modes:
    raise ValueError(f"Ablation modes must be among {ABLATION_MODES}; got {list(modes)}.")
  out = []
  for mode in modes:
    for on in (True, False):
      row = ml_collections.ConfigDict(config.to_dict())
      row.generator.mode = mode
      if not on:
        row.inversion.gamma, row.inversion.delta = 0.0, 0.0
      config_lib.validate(row)
      out.append((f"{mode}-{'cos_orth' if on else 'no_cos_orth'}", row))
  return out


def _finished(row_dir: Path, steps: int) -> bool:
  path = row_dir / "summary.json"
  return path.is_file() and json.loads(path.read_text()).get("steps") == steps


def _saved_evaluation(row_dir: Path, settings: dict):
  """The row's saved evaluation if it was made with these settings (else None: evaluate again)."""
  path = row_dir / "eval" / "metrics.json"
  if not path.is_file():
    return None
  saved = json.loads(path.read_text())
  made_with = {k: saved.get(k) for k in ("num_per_class", "seed", "generator_steps")}
  made_with["verifier"] = (saved.get("verifier") or {}).get("workdir")
  return saved if made_with == settings else None


def run(config, workdir, verifier_dir=None, *, modes=ABLATION_MODES, num_per_class: int = 500,
        seed: int = 0) -> list[dict]:
  workdir = Path(workdir)
  if config.ensemble.seeds:
    raise ValueError("The ablation trains single generators; leave ensemble.seeds empty.")
  if not config.init_from:
    raise ValueError("The ablation needs a trained classifier: pass --config.init_from=CLASSIFIER_WORKDIR.")
  table = []
  plan = rows(config, modes)
  for name, row_config in plan:
    row_dir = workdir / name
    if _finished(row_dir, row_config.inversion.steps):
      log.info("ablation row %s: trained already", name)
    else:
      log.info("ablation row %s: training (%d steps)", name, row_config.inversion.steps)
      inversion.run(row_config, row_dir)
    settings = {"num_per_class": num_per_class, "seed": seed, "generator_steps": row_config.inversion.steps,
                "verifier": None if verifier_dir is None else paths.absolute(verifier_dir)}
    result = _saved_evaluation(row_dir, settings)
    if result is None:
      result = evaluation.run(row_dir, verifier_dir, num_per_class=num_per_class, seed=seed,
                              figures=False, tensorboard=False)
    table.append({"row": name, "mode": row_config.generator.mode,
                  "cos_orth": row_config.inversion.gamma > 0 or row_config.inversion.delta > 0,
                  **{k: result.get(k) for k in TABLE_FIELDS if k in result}})
  record = {"dataset": config.dataset, "classifier": paths.absolute(config.init_from),
            "verifier": None if verifier_dir is None else paths.absolute(verifier_dir),
            "seed": config.seed, "eval_seed": seed, "steps": config.inversion.steps,
            "gamma": config.inversion.gamma, "delta": config.inversion.delta,
            "num_per_class": num_per_class, "rows": table}
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "ablation.json").write_text(json.dumps(record, indent=2) + "\n")
  (workdir / "ablation.md").write_text(markdown_table(record))
  return table


TABLE_FIELDS = ("target_accuracy", "target_accuracy_min_class", "verifier_accuracy",
                "verifier_accuracy_min_class", "generated_within_class_cosine", "real_within_class_cosine",
                "verifier_generated_within_class_cosine", "verifier_real_within_class_cosine",
                "generated_gram_deviation", "real_gram_deviation", "knn_precision", "knn_recall", "generated_nn_distance",
                "generated_nn_ssim")

# Column title → field; ↓ / ↑: lower / higher is more diverse.
_COLUMNS = (
    ("target acc", "target_accuracy"),
    ("target min class", "target_accuracy_min_class"),
    ("verifier acc", "verifier_accuracy"),
    ("cos (target feats) ↓", "generated_within_class_cosine"),
    ("cos (verifier feats) ↓", "verifier_generated_within_class_cosine"),
    ("Gram dev ↓", "generated_gram_deviation"),
    ("k-NN precision", "knn_precision"),
    ("k-NN recall ↑", "knn_recall"),
    ("NN SSIM", "generated_nn_ssim"),
)


def _cell(value) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "–"
  return f"{value:.3f}"


def markdown_table(record: dict) -> str:
  """The ablation as a markdown table, with the real-data reference row and the settings."""
  lines = ["| mode | cos + orth | " + " | ".join(c for c, _ in _COLUMNS) + " |",
           "|---|---|" + "---:|" * len(_COLUMNS)]
  for row in record["rows"]:
    lines.append(f"| {row['mode']} | {'yes' if row['cos_orth'] else 'no'} | "
                 + " | ".join(_cell(row.get(f)) for _, f in _COLUMNS) + " |")
  if record["rows"]:
    first = record["rows"][0]
    real = {"generated_within_class_cosine": first.get("real_within_class_cosine"),
            "verifier_generated_within_class_cosine": first.get("verifier_real_within_class_cosine"),
            "generated_gram_deviation": first.get("real_gram_deviation")}
    lines.append("| *real test images* | | " + " | ".join(_cell(real.get(f)) for _, f in _COLUMNS) + " |")
  lines.append("")
  lines.append(f"{record['dataset']}, generator steps {record['steps']}, training seed {record['seed']}, "
               f"evaluation seed {record['eval_seed']}, {record['num_per_class']} generated images per "
               f"class; cos + orth = yes: γ = {record['gamma']}, δ = {record['delta']}; no: γ = δ = 0. "
               "k-NN precision/recall (k = 3) in the "
               + ("verifier's" if record["verifier"] else "target classifier's") + " feature space.")
  return "\n".join(lines) + "\n"
