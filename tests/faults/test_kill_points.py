"""Ingest killed with SIGKILL and rerun (bench/faults.py's harness, two kill points of its twenty): the rerun's
dataset equals an uninterrupted run's row for row, and a reader at the kill saw no manifest or a complete dataset."""

from __future__ import annotations

import fault_jobs
import faults
import pytest


@pytest.mark.slow
def test_ingest_killed_mid_run_and_while_writing_a_part_reruns_to_the_same_dataset(sample_root, tmp_path):
    job = fault_jobs.IngestJob(work=tmp_path, runner="local")
    (tmp_path / "sample").symlink_to(sample_root)  # the session's sample set (its ingest.yaml included)
    # Two points: one at a seeded time over the run, one a few ms after a clip part's temporary file appears.
    result = faults.kill_points(job, 2, seed=0)
    rows = result["kill_points"]
    assert [r["moment"].startswith("on clips/part-") for r in rows] == [False, True]
    assert sum(r["killed"] for r in rows) >= 1, "no run was killed before its end: the points test nothing"
    for r in rows:
        assert r["reader"] == [], f"a reader at {r['moment']} saw a partial dataset: {r['reader']}"
        assert r["problems"] == [], f"rerun after a kill at {r['moment']}: {r['problems']}"
    assert result["reference"]["clip rows"] > 0 and result["survived"] == 2
