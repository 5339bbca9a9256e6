"""The local runner: every step of `ingest.steps.STEPS` in this process, in order (tests, debugging:
`python -m ingest --no-ray`). ingest/pipeline.py runs the same list on Ray Data."""

from __future__ import annotations

import time

from ingest.config import IngestConfig
from ingest.step import Context
from ingest.steps import walk


def run_local(cfg: IngestConfig) -> dict:
    """The whole ingest in this process; returns the manifest (its "counts" are the per-source summary)."""
    return walk(Context(cfg, started=time.time()), lambda name, run, groups, ctx: [run(g, ctx) for g in groups])
