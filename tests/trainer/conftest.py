"""Trainer fixtures: one tiny shard dataset per session from the ingest sample generator and pipeline.

`sample_shards` runs `python -m ingest.sample_data --preset medium` (96 train + 4 val videos per motion class and
source, ~45 s) and `python -m ingest --no-ray` in subprocesses (real ffmpeg encodes, real decoding, the same code users
run), pointed at a session temp dir. Recipes are built from the tiny
configs under configs/ with the `nano` preset and a handful of steps.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from trainer_testlib import TINY, make_shards, recipe


@pytest.fixture(scope="session")
def sample_shards(tmp_path_factory) -> Path:
    # VIDEOMAE_TEST_SHARDS: a shard dataset made earlier by trainer_testlib.make_shards (development: skips minutes
    # of generation when rerunning a few trainer tests).
    if os.environ.get("VIDEOMAE_TEST_SHARDS"):
        return Path(os.environ["VIDEOMAE_TEST_SHARDS"])
    return make_shards(tmp_path_factory.mktemp("trainer_data"))


@pytest.fixture(scope="session")
def pretrained(ray_session, sample_shards, tmp_path_factory):
    """~100 nano pre-training steps on Ray Train; the run other trainer tests start from."""
    from trainer import pretrain

    storage = tmp_path_factory.mktemp("runs")
    cfg = recipe("pretrain", TINY, sample_shards, storage, "pre100", "optim.max_steps=100", "optim.warmup_steps=10",
                 "optim.lr=3e-3", "run.log_every=10", "run.checkpoint_every=50", "monitor.enabled=true",
                 "monitor.every=50")
    result = pretrain.main(cfg=cfg)
    return cfg, result
