"""Fixtures for the ingest tests: one small generated sample tree per session (ffmpeg, ~10 s)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.config import IngestConfig, load_config
from ingest.sample_data import generate, sources_config


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    generate(root, "small", seed=0)
    return root


@pytest.fixture(scope="session")
def planted(sample_root) -> dict:
    return json.loads((sample_root / "planted.json").read_text())


def make_config(root: Path, output: Path, **overrides) -> IngestConfig:
    """The sample config pointed at a generated tree (same clip settings as configs/ingest/sample.yaml)."""
    base = load_config(Path(__file__).parents[2] / "configs/ingest/sample.yaml")
    data = base.model_dump()
    data.update(output=str(output), sources=sources_config(root))
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[key] = value
    return IngestConfig.model_validate(data)


@pytest.fixture
def sample_cfg(sample_root, tmp_path) -> IngestConfig:
    return make_config(sample_root, tmp_path / "shards")


def rel(root: Path, uri: str) -> str:
    """A uri as a path relative to the sample root (what planted.json uses)."""
    return str(Path(uri).relative_to(root))


@pytest.fixture(scope="session")
def fingerprinted(sample_root, tmp_path_factory):
    """(config, {relative path: record}) for every sample input that survives probe and fingerprint."""
    from ingest.steps.fingerprint import fingerprint_record
    from ingest.steps.listing import list_inputs
    from ingest.steps.probe import probe_record

    cfg = make_config(sample_root, tmp_path_factory.mktemp("out"))
    recs = [fingerprint_record(probe_record(r, cfg), cfg) for r in list_inputs(cfg)]
    return cfg, {rel(sample_root, r.uri): r for r in recs if r.ok}


@pytest.fixture(scope="session")
def make_cfg():
    """`make_config(root, output, **overrides)`, as a fixture: test modules do not import conftest."""
    return make_config


@pytest.fixture(scope="session")
def relpath(sample_root):
    """uri -> path relative to the sample root (what planted.json uses)."""
    return lambda uri: rel(sample_root, uri)
