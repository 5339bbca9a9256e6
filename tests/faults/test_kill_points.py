"""Ingest killed with SIGKILL and rerun (bench/faults.py's harness at one of its twenty points, the CI budget's
share): the rerun's dataset equals an uninterrupted run's row for row, and a reader at the kill saw no manifest."""

from __future__ import annotations

import fault_jobs
import faults
import pytest
from fault_kill import Moment


class KilledWhileWritingParts(fault_jobs.IngestJob):
    """One kill point: a few ms after the first clip part appears (under its temporary or its final name), while
    the parts are being written: the point where a rerun must reuse what is whole and rewrite what is not."""

    def moments(self, n, duration_s, rng):
        return [Moment(pattern="clips/part-*.parquet*", delay_s=0.003)]


@pytest.mark.slow
def test_ingest_killed_while_writing_parts_reruns_to_the_same_dataset(sample_root, tmp_path):
    job = KilledWhileWritingParts(work=tmp_path, runner="local")
    (tmp_path / "sample").symlink_to(sample_root)  # the session's sample set (its ingest.yaml included)
    result = faults.kill_points(job, 1, seed=0)
    [row] = result["kill_points"]
    assert row["killed"] and row["phase"] == "clips", f"the kill missed the parts: {row}"
    assert row["reader"] == [], f"a reader at the kill saw a partial dataset: {row['reader']}"
    assert row["problems"] == [], f"the rerun's dataset differs from the uninterrupted run's: {row['problems']}"
    assert result["reference"]["clip rows"] == 112 and row["counted"] == result["reference"]
