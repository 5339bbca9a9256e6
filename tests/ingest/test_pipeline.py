"""End to end: the sample tree through the whole pipeline, in one process (fast) and on real Ray (slow).

What must hold: every input in exactly one of videos/duplicates/rejects; every planted copy found and nothing
else merged; bad inputs rejected with their reason; labels merged; the leak removed; reruns identical; an
interrupted run completes on rerun without duplicates or loss.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingest.steps import run_local
from ingest.steps.write import part_uri
from videomae import shards, video


def _tables(out: Path) -> dict:
    return {n: pq.read_table(out / f"{n}.parquet").to_pylist() for n in ("videos", "duplicates", "rejects")}


def rel(root: Path, uri: str) -> str:
    return str(Path(uri).relative_to(root))


def check_dataset(root: Path, out: Path, planted: dict, manifest: dict) -> None:
    t = _tables(out)
    listed = [p for p in root.glob("unlabeled_*/*")]
    rows = {s: (root / f).read_text().strip().splitlines() for s, f in (("a", "motion_a.csv"), ("b", "motion_b.jsonl"))}
    n_inputs = len(listed) + len(rows["a"]) - 1 + len(rows["b"])
    # Accounting: inputs = kept + duplicates + rejected, each input once.
    assert len(t["videos"]) + len(t["duplicates"]) + len(t["rejects"]) == n_inputs
    uris = [r["uri"] for r in t["videos"] + t["duplicates"] + t["rejects"]]
    assert len(set(uris)) == n_inputs
    assert manifest["counts"]["total"]["seen"] == n_inputs
    assert manifest["counts"]["total"]["kept"] == len(t["videos"])

    # Rejects, with their reasons.
    got = {rel(root, r["uri"]): r["reason"] for r in t["rejects"]}
    assert got == planted["rejects"]

    # Dedupe: exactly the planted pairs, in either direction as the survivor rule decides.
    by_id = {r["video_id"]: rel(root, r["uri"]) for r in t["videos"]}
    found = {frozenset((rel(root, d["uri"]), by_id[d["kept_video_id"]])): d for d in t["duplicates"]}
    expected = [(p["copy"], p["original"]) for p in planted["near"] + planted["exact"]]
    expected += [(p["train"], p["val"]) for p in planted["leaks"]]
    assert set(found) == {frozenset(p) for p in expected}
    for p in planted["exact"]:
        assert found[frozenset((p["copy"], p["original"]))]["kind"] == "exact"
    # The leak: the train copies are the ones dropped, the val videos kept.
    for p in planted["leaks"]:
        d = found[frozenset((p["train"], p["val"]))]
        assert rel(root, d["uri"]) == p["train"] and d["split"] == "train"
    # Half-size and cropped copies lose to their bigger originals.
    for p in planted["near"]:
        if p["kind"] in ("resize_half", "crop_border"):
            assert rel(root, found[frozenset((p["copy"], p["original"]))]["uri"]) == p["copy"]

    # Labels: A's and B's names merged into one space; B's aliases resolved.
    labels = json.loads((out / "labels.json").read_text())
    assert labels["names"] == planted["classes"]
    a, b = labels["sources"]["motion_a"], labels["sources"]["motion_b"]
    assert b["to_merged"][b["classes"].index("moving_left")] == a["to_merged"][a["classes"].index("move left")]
    assert b["to_merged"][b["classes"].index("Grow")] == a["to_merged"][a["classes"].index("grow")]

    # Clips: every kept video has its clips, labels set for labeled sources only, frames decode.
    clips = shards.read_clips(str(out)).to_pylist()
    assert {c["video_id"] for c in clips} == {v["video_id"] for v in t["videos"]}
    assert len({c["clip_id"] for c in clips}) == len(clips) == manifest["counts"]["total"]["clips"]
    for c in clips[:5]:
        frames = video.decode_jpegs(c["frames"])
        assert frames.shape[0] == c["num_frames"] == 8 and min(frames.shape[1:3]) == 64
    assert all((c["label"] is None) == (c["source"] in ("lavfi", "mixed")) for c in clips)
    assert {c["split"] for c in clips} == {"train", "val"}


def _rows(out: Path) -> dict:
    t = _tables(out)
    t["clips"] = shards.read_clips(str(out)).to_pylist()
    return t


def test_local_run_accounting_and_resume(sample_root, planted, tmp_path, make_cfg):
    cfg = make_cfg(sample_root, tmp_path / "shards")
    manifest = run_local(cfg)
    check_dataset(sample_root, tmp_path / "shards", planted, manifest)
    first = _rows(tmp_path / "shards")

    # Interrupt: one part never written, one torn mid-write, no manifest. A rerun completes it.
    Path(part_uri(cfg.output, 0)).unlink()
    Path(part_uri(cfg.output, 1)).write_bytes(b"PAR1 torn")
    (tmp_path / "shards" / "manifest.json").unlink()
    before = Path(part_uri(cfg.output, 2)).stat().st_mtime_ns
    manifest2 = run_local(cfg)
    assert Path(part_uri(cfg.output, 2)).stat().st_mtime_ns == before  # complete parts are not redone
    assert _rows(tmp_path / "shards") == first
    assert manifest2["counts"] == manifest["counts"]


@pytest.mark.slow
def test_ray_pipeline_end_to_end_and_rerun(ray_session, sample_root, planted, tmp_path, make_cfg):
    from ingest.pipeline import run

    out = tmp_path / "shards"
    cfg = make_cfg(sample_root, out, ray__videos_per_part=12)
    manifest = run(cfg)
    check_dataset(sample_root, out, planted, manifest)
    first = _rows(out)
    # A second run into a fresh directory gives identical rows: same ids, same frame bytes.
    cfg2 = make_cfg(sample_root, tmp_path / "again", ray__videos_per_part=12)
    run(cfg2)
    assert _rows(tmp_path / "again") == first
    # And the local runner agrees with Ray row for row (parts differ only in how videos are grouped).
    local = make_cfg(sample_root, tmp_path / "local")
    run_local(local)
    assert _rows(tmp_path / "local") == first
