"""Every ingest config validates, opens with its command, and errors name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.config import ConfigError, IngestConfig, apply_override, load_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs" / "ingest").glob("*.yaml"))


def test_configs_exist():
    names = {p.name for p in CONFIGS}
    assert {"sample.yaml", "unlabeled_hybrid.yaml", "k710.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates_and_opens_with_its_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# ") and "python -m ingest" in first and path.name in first
    cfg = load_config(path)
    assert isinstance(cfg, IngestConfig) and cfg.sources


def test_unlabeled_hybrid_reproduces_the_paper_mix():
    cfg = load_config(Path(__file__).parents[2] / "configs/ingest/unlabeled_hybrid.yaml")
    weights = {s.name: s.weight for s in cfg.sources}
    assert weights == pytest.approx({"k710": 0.488, "ssv2": 0.125, "ava": 0.015, "webvid2m": 0.185,
                                     "self_collected": 0.185})  # fmt: skip
    assert sum(weights.values()) == pytest.approx(0.998, abs=0.01)
    assert cfg.stride_for(cfg.source("ssv2")) == 2
    assert {cfg.stride_for(s) for s in cfg.sources if s.name != "ssv2"} == {4}
    assert all(s.kind == "unlabeled" for s in cfg.sources)
    assert cfg.clips.num_frames == 16


def test_k710_merges_three_labeled_kinetics():
    cfg = load_config(Path(__file__).parents[2] / "configs/ingest/k710.yaml")
    assert [s.name for s in cfg.sources] == ["k400", "k600", "k700"]
    assert all(s.kind == "labeled" and s.path.endswith((".csv", ".jsonl")) for s in cfg.sources)
    assert cfg.dedupe.enabled


def test_errors_name_the_bad_key():
    path = Path(__file__).parents[2] / "configs/ingest/sample.yaml"
    with pytest.raises(ConfigError) as e:
        load_config(path, ["sources.0.kind=video"])
    assert "sources.0.kind: Input should be 'unlabeled' or 'labeled'" in str(e.value)
    with pytest.raises(ConfigError, match=r"clips\.num_frame: Extra inputs are not permitted"):
        load_config(path, ["clips.num_frame=8"])
    with pytest.raises(ConfigError, match=r"dedupe\.threshold: "):
        load_config(path, ["dedupe.threshold=2"])
    with pytest.raises(ConfigError, match=r"sources\.7: no list item"):
        load_config(path, ["sources.7.kind=labeled"])
    with pytest.raises(ConfigError, match="source names must be unique"):
        load_config(path, ["sources.1.name=motion_a"])


def test_overrides_parse_yaml_values():
    data = {"a": {"b": 1}, "l": [{"x": 1}]}
    apply_override(data, "a.b=2.5")
    apply_override(data, "l.0.x=[1, 2]")
    apply_override(data, "a.c.d=true")
    assert data == {"a": {"b": 2.5, "c": {"d": True}}, "l": [{"x": [1, 2]}]}


def test_digest_ignores_parallelism_but_not_content():
    path = Path(__file__).parents[2] / "configs/ingest/sample.yaml"
    base = load_config(path)
    assert load_config(path, ["ray.videos_per_part=3"]).digest == base.digest
    assert load_config(path, ["clips.short_side=96"]).digest != base.digest
