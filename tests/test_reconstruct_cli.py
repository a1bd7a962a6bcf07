"""`jaxinv reconstruct` end to end on the tiny digits config."""

import json

import numpy as np

from conftest import REPO
from jaxinv import cli

TINY = str(REPO / "configs" / "reconstruct.py:digits,mlp,200,tiny")


def test_reconstruct_writes_the_audit_and_the_table(tmp_path, capsys):
  work = tmp_path / "tldr"
  assert cli.main(["reconstruct", "--config", TINY, "--workdir", str(work)]) == 0
  indices = np.load(work / "classifier" / "train_indices.npy")
  assert len(indices) == 200 and len(set(indices.tolist())) == 200
  audit = json.loads((work / "audit.json").read_text())
  assert audit["classifier"]["train_examples"] == 200 and audit["subset_seed"] == 0
  assert audit["terms"]["weight_gradient_norm"] > 0 and audit["terms"]["kl_perturbed"] > 0
  for name in ("reconstruction", "plain", "test_control"):
    part = audit[name]
    assert part["images"] == 20  # 2 per class × 10 digits
    assert 0 <= part["matched_at_threshold"] <= part["images"]
    assert -1 <= part["mean_best_ssim"] <= 1
    assert part["matched_share_of_train"] == part["matched_at_threshold"] / 200
  metrics = [json.loads(line) for line in (work / "reconstruction" / "metrics.jsonl").read_text().splitlines()]
  assert {"loss_weight_gradient_norm", "loss_kl_perturbed", "loss_total_variation"} <= set(metrics[-1])
  plain = [json.loads(line) for line in (work / "plain" / "metrics.jsonl").read_text().splitlines()]
  assert "loss_weight_gradient_norm" not in plain[-1]  # the control has no reconstruction terms
  with np.load(work / "reconstructions.npz") as f:
    assert f["images"].shape == (20, 28, 28, 1)
    assert set(f["best_train_index"].tolist()) <= set(indices.tolist())
  assert (work / "best_matches.png").stat().st_size > 0
  out = capsys.readouterr().out
  assert "| digits | mlp | 200 |" in out
  assert cli.main(["reconstruct-table", "--workdir", str(work), "--out", str(tmp_path / "t.md")]) == 0
  assert "| digits | mlp | 200 |" in (tmp_path / "t.md").read_text()
  assert cli.main(["reconstruct-table", "--workdir", str(tmp_path)]) == 2  # not a reconstruct run
  figure = tmp_path / "figure5.png"
  assert cli.main(["figure", "reconstructions", "--workdir", str(work), "--pairs", "4",
                   "--out", str(figure)]) == 0
  assert figure.stat().st_size > 0
