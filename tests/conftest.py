"""Shared test fixtures.

One Ray instance per test session (2 cores here): `ray_session` starts it on first use with capped CPUs
and object-store memory, and every Ray test takes this fixture instead of calling `ray.init` itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ray_session():
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=int(os.environ.get("VIDEOMAE_TEST_RAY_CPUS", "2")),
            object_store_memory=512 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
            ignore_reinit_error=True,
        )
    yield ray
    # Left running for the rest of the session; pytest's exit shuts it down.


# ------------------------------------------------------------------------------------------- feature extraction
@pytest.fixture(scope="session")
def feature_corpus(ray_session, tmp_path_factory):
    """One extraction run on real Ray, shared by tests/trainer/test_extract.py and tests/api/test_api_search.py:
    four tiny motion videos (64 px, 30 frames: six nano windows each, one every 4 frames) listed in a CSV manifest
    with a file that is not a video and a row whose file is missing; a nano model as initialised; two videos per part.
    Also a re-encoded half-size copy of the first video, kept out of the manifest (the planted search query)."""
    import csv

    import numpy as np
    import torch

    import videomae
    from ingest.sample_data import encode_frames, render_motion
    from trainer import extract
    from trainer.extraction.config import load_config

    root = tmp_path_factory.mktemp("feature_corpus")
    (root / "videos").mkdir()
    labels = ["move left", "move right", "grow", "shrink"]
    rows = []
    for i, label in enumerate(labels):
        frames = render_motion(label, 64, 2.5, 12, np.random.default_rng([7, i]))
        encode_frames(frames, 12, root / "videos" / f"v{i}.mp4")
        rows.append({"uri": f"videos/v{i}.mp4", "label": label})
    (root / "videos" / "bad.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    rows += [{"uri": "videos/bad.mp4", "label": "grow"}, {"uri": "videos/gone.mp4", "label": "grow"}]
    with open(root / "corpus.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["uri", "label"])
        w.writeheader()
        w.writerows(rows)
    import subprocess

    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(root / "videos" / "v0.mp4"), "-vf", "scale=iw/2:ih/2",
                    "-c:v", "libx264", "-crf", "28", "-pix_fmt", "yuv420p", str(root / "copy_of_v0.mp4")], check=True)
    torch.manual_seed(0)
    videomae.create_model("nano").save(root / "model")
    cfg = load_config(str(Path(__file__).resolve().parents[1] / "configs/extract/sample.yaml"),
                      [f"input.path={root / 'corpus.csv'}", "input.source=corpus", f"output={root / 'features'}",
                       f"model.source={root / 'model'}", "videos_per_part=2", "write_npy=true"])
    manifest = extract.main(cfg=cfg)
    return {"root": root, "cfg": cfg, "manifest": manifest, "labels": labels}


@pytest.fixture(scope="session")
def video_zoo(tmp_path_factory):
    """The real-world video zoo (tests/video_zoo.py): ~26 small files made with ffmpeg once per session, each with
    its stated outcome; used by tests/videomae (decoding), tests/ingest (the CLI on Ray) and tests/api (uploads)."""
    import video_zoo

    return video_zoo.build(tmp_path_factory.mktemp("zoo") / "files")
