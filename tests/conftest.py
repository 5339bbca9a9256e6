"""Shared test fixtures.

One Ray instance per test session (2 cores here): `ray_session` starts it on first use with capped CPUs
and object-store memory, and every Ray test takes this fixture instead of calling `ray.init` itself.
"""

from __future__ import annotations

import os

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


@pytest.fixture(scope="session")
def video_zoo(tmp_path_factory):
    """The real-world video zoo (tests/video_zoo.py): ~26 small files made with ffmpeg once per session, each with
    its stated outcome; used by tests/videomae (decoding), tests/ingest (the CLI on Ray) and tests/api (uploads)."""
    import video_zoo

    return video_zoo.build(tmp_path_factory.mktemp("zoo") / "files")
