"""Helpers shared by the trainer tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trainer.config import load_config

REPO = Path(__file__).resolve().parents[2]


def make_shards(root: Path, preset: str = "medium", clips_per_video: int = 2) -> Path:
    subprocess.run([sys.executable, "-m", "ingest.sample_data", str(root / "videos"), "--preset", preset],
                   check=True, capture_output=True, cwd=REPO)
    # The generator writes the tree's ingest config (configs/ingest/sample.yaml's settings, its paths).
    subprocess.run([sys.executable, "-m", "ingest", "--config", str(root / "videos" / "ingest.yaml"), "--no-ray",
                    "--set", f"output={root / 'shards'}", "--set", f"clips.clips_per_video={clips_per_video}"],
                   check=True, capture_output=True, cwd=REPO)
    return root / "shards"


def recipe(kind: str, config: str, shards: Path, storage: Path, name: str, *sets: str):
    """A tiny recipe config: the YAML under configs/, pointed at the test shards and storage, nano-sized."""
    base = [f"data.path={shards}", "model.preset=nano", f"run.storage_path={storage}", f"run.name={name}",
            "run.tensorboard=false", "data.max_tasks=1", "data.cpus_per_task=0.5"]
    if kind == "pretrain":  # the learning-health checks cost seconds per run; the tests that check them turn them on
        base.append("monitor.enabled=false")
    return load_config(kind, REPO / config, [*base, *sets])


TINY = "configs/pretrain/tiny.yaml"
