"""bench/learning.py end to end on its smoke study (a handful of rendered videos, a few steps): every measurement of
a variant lands in the JSON line and the table prints. Not a measurement: docs/results.md quotes the real studies."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import learning  # noqa: E402


def test_smoke_study_writes_every_measurement_and_resumes(tmp_path, capsys):
    out = tmp_path / "learning.jsonl"
    assert learning.main(["--study", "smoke", "--json", str(out), "--cache", str(tmp_path / "cache")]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["study"] == "smoke" and row["variant"]["name"] == "smoke"
    for model in (row["random"], row["pretrained"], *row["snapshots"].values()):
        assert 0 < model["heldout_loss"] < 5
        assert all(0 <= model[k] <= 100 for k in ("knn", "linear", "attentive"))
    assert len(row["finetune"]["pretrained"]) == len(row["finetune"]["scratch"]) == 1
    assert "| smoke | smoke |" in capsys.readouterr().out
    # A rerun skips the variant already measured (resumable) and renders nothing again (the .npz cache).
    assert learning.main(["--study", "smoke", "--json", str(out), "--cache", str(tmp_path / "cache")]) == 0
    assert len(out.read_text().splitlines()) == 1
