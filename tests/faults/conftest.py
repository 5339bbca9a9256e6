"""Fixtures for the fault tests: the small sample set (ingest/sample_data.py, as tests/ingest uses it) and the
harness of bench/faults.py, whose comparisons these tests reuse rather than write a second time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# bench/ holds scripts run as files (their folder first on sys.path), not a package: the same here.
# bench/ after the repository: its ingest.py must not shadow the ingest package.
sys.path[:0] = [str(REPO)] if str(REPO) not in sys.path else []
sys.path.append(str(REPO / "bench"))


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    from ingest.sample_data import generate, write_ingest_config

    root = tmp_path_factory.mktemp("sample")
    generate(root, "small", seed=0)
    write_ingest_config(root)  # as `python -m ingest.sample_data` does: bench/fault_jobs.IngestJob runs it
    return root
