"""The sample tree's ready ingest config: `python -m ingest.sample_data DIR` writes DIR/ingest.yaml, the same config
as configs/ingest/sample.yaml for data/sample, so no caller rewrites `sources.N` to point at a generated tree."""

from __future__ import annotations

from pathlib import Path

from ingest.config import load_config
from ingest.sample_data import write_ingest_config

REPO = Path(__file__).parents[2]


def test_written_config_is_configs_ingest_sample_yaml(tmp_path):
    written = load_config(write_ingest_config(tmp_path))
    assert written.root == str(tmp_path.resolve()) and written.output == f"{tmp_path.resolve()}/shards"
    shipped = load_config(REPO / "configs/ingest/sample.yaml")
    assert written.model_dump(exclude={"root", "output"}) == shipped.model_dump(exclude={"root", "output"})
    assert [written.path_of(s) for s in written.sources] == [f"{tmp_path.resolve()}/{p}" for p in (
        "motion_a.csv", "motion_b.jsonl", "unlabeled_lavfi", "unlabeled_mixed")]
    # Any config points at another tree with one override: relative source paths follow `root`.
    moved = load_config(REPO / "configs/ingest/sample.yaml", [f"root={tmp_path}"])
    assert [moved.path_of(s) for s in moved.sources] == [written.path_of(s) for s in written.sources]
