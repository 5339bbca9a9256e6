"""Dedupe as stages over files (ingest/dedupe_stages.py) gives exactly the one-process rule's duplicates (pairs,
kinds, distances) and counts: on the sample set's real fingerprints, on the rule's hand-made cases and on synthetic
fingerprints with planted copies, split over many blocks and partitions, in this process and as Ray tasks; a run
stopped inside a stage resumes there, and one killed (SIGKILL) inside the shuffle reruns to the same duplicates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest import dedupe, dedupe_stages, signature, synthetic
from ingest.config import Dedupe, IngestConfig
from ingest.records import VideoRecord
from ingest.step import Context

REPO = Path(__file__).resolve().parents[2]


def _rows_one_process(recs: list[VideoRecord], cfg: Dedupe) -> tuple[list, dict]:
    ref = dedupe.find_duplicates(recs, cfg)
    return sorted((d["video_id"], d["kept_video_id"], d["kind"], d["distance"]) for d in ref.duplicates), ref.stats


def _rows_staged(recs: list[VideoRecord], cfg: Dedupe, out: Path, map_tasks=dedupe_stages.local_map
                 ) -> tuple[list, dict]:
    out.mkdir(parents=True, exist_ok=True)
    icfg = IngestConfig.model_validate({"sources": [{"name": "s", "path": str(out), "kind": "unlabeled"}],
                                        "output": str(out), "dedupe": cfg.model_dump()})
    ctx = Context(icfg, map_tasks=map_tasks)
    for r in recs:
        r.duplicate_of, r.duplicate_kind, r.duplicate_distance = None, "", 0.0
    dedupe_stages.dedupe_step(recs, ctx)
    assert not (out / "_work").exists(), "the work directory outlives a finished dedupe"
    rows = sorted((r.video_id, r.duplicate_of, r.duplicate_kind, r.duplicate_distance) for r in recs if r.duplicate_of)
    return rows, ctx.facts["dedupe"]


def _rec(name, split="train", kind="unlabeled", size=(64, 64), source_index=0, sig=None, sha=None):
    r = VideoRecord(uri=f"/x/{name}", source=f"s{source_index}", source_index=source_index, kind=kind, split=split,
                    key=name)
    r.width, r.height = size
    r.sha256 = sha or name
    r.signature = signature.to_bytes(sig)
    return r


def _rule_cases() -> list[tuple[str, list[VideoRecord], Dedupe]]:
    """The one-process rule's own cases (tests/ingest/test_dedupe.py): kinds and sizes decide survivors, a leak, a leak
    through a dropped val copy, no chaining, an exact copy of a video that is itself a near copy."""
    rng = np.random.default_rng(1)
    base = [rng.integers(0, 255, (6, signature.L, signature.D), np.uint8) for _ in range(5)]
    near = [np.clip(b.astype(int) + rng.integers(-3, 4, b.shape), 0, 255).astype(np.uint8) for b in base]
    survivors = [_rec("u_big", size=(320, 240), sig=base[0]),
                 _rec("l_small", kind="labeled", size=(64, 64), sig=near[0], source_index=1),
                 _rec("train", kind="labeled", sig=base[1]), _rec("val", kind="labeled", split="val", sig=near[1]),
                 _rec("small", size=(64, 48), sig=base[2]), _rec("big", size=(128, 96), sig=near[2]),
                 _rec("second", source_index=2, sig=base[3]), _rec("first", source_index=1, sig=near[3]),
                 _rec("orig", sig=base[4], sha="h"), _rec("copy", sig=base[4], sha="h", source_index=3),
                 _rec("u_big_copy", size=(320, 240), sig=base[0], sha="u_big", source_index=4)]
    a = np.random.default_rng(2).integers(60, 190, (6, signature.L, signature.D)).astype(int)
    through_val = [_rec("val1", split="val", size=(128, 128), sig=a.astype(np.uint8)),
                   _rec("val2", split="val", sig=(a + 20).astype(np.uint8)),
                   _rec("train", sig=(a + 40).astype(np.uint8))]
    c = np.random.default_rng(3).integers(60, 190, (6, signature.L, signature.D)).astype(int)
    chain = [_rec(n, sig=(c + k * 20).astype(np.uint8), size=(100 - k, 100)) for k, n in enumerate("abc")]
    loose = Dedupe(threshold=0.1, width=0.5, block_videos=1, partition_videos=2)
    return [("survivors", survivors, Dedupe(threshold=0.04, block_videos=2, partition_videos=3)),
            ("leak through a dropped val copy", through_val, loose), ("no chaining", chain, loose)]


@pytest.mark.parametrize("case", range(3), ids=["survivors", "leak_through_val", "no_chaining"])
def test_the_rules_cases_give_the_same_duplicates(case, tmp_path):
    name, recs, cfg = _rule_cases()[case]
    want = _rows_one_process(recs, cfg)
    assert want[0], f"{name}: the case drops nothing"
    assert _rows_staged(recs, cfg, tmp_path) == want, name


def test_the_sample_sets_fingerprints_give_the_same_duplicates(fingerprinted, tmp_path):
    """Real fingerprints of the sample set's videos (planted re-encoded, trimmed, shifted, damaged copies and
    train/val leaks), over 7 blocks and 5 partitions."""
    _, by_path = fingerprinted
    recs = list(by_path.values())
    cfg = Dedupe(block_videos=-(-len(recs) // 7), partition_videos=-(-len(recs) // 5))
    want = _rows_one_process(recs, cfg)
    assert want[1]["near"] > 5 and want[1]["leaks"] >= 1 and want[1]["exact"] >= 1, want[1]
    assert _rows_staged(recs, cfg, tmp_path) == want


def test_synthetic_copies_over_many_blocks_locally_and_on_ray(ray_session, tmp_path):
    from ingest.pipeline import map_tasks

    syn = synthetic.Synthetic(n=3000, block_videos=700, copy_share=0.05, eval_share=0.05)
    recs = synthetic.records(syn)
    cfg = Dedupe(block_videos=700, partition_videos=900)  # 5 blocks, 4 partitions
    want = _rows_one_process(recs, cfg)
    assert want[1]["exact"] == 30 and want[1]["near"] == 120 and want[1]["leaks"] > 0, want[1]
    assert _rows_staged(recs, cfg, tmp_path / "local") == want
    assert _rows_staged(recs, cfg, tmp_path / "ray", map_tasks) == want


def _work(tmp_path: Path, syn: synthetic.Synthetic, cfg: Dedupe) -> dedupe_stages.Work:
    starts, partitions = dedupe_stages.layout(syn.n, cfg)
    work = dedupe_stages.Work(str(tmp_path / "work"), starts, partitions, cfg)
    for b in range(work.blocks):
        blk = syn.block(b)
        dedupe_stages.write_block(work, b, blk["sigs"], blk["lens"], blk["sha"], blk["eval"])
    return work


def test_a_stopped_run_resumes_at_its_stage(tmp_path):
    syn = synthetic.Synthetic(n=2000, block_videos=500)
    cfg = Dedupe(block_videos=500, partition_videos=500)
    whole = dedupe_stages.run_stages(_work(tmp_path / "a", syn, cfg))
    work = _work(tmp_path / "b", syn, cfg)
    assert dedupe_stages.run_stages(work, stop_after="buckets") is None
    # One buckets task lost (its marker gone, as when a kill lands before the marker's rename): redone, not the rest.
    Path(work.done_uri("buckets", 2)).unlink()
    again = dedupe_stages.run_stages(work)
    assert again.stages["keys"]["reused"] == work.blocks and again.stages["buckets"]["reused"] == work.partitions - 1
    assert again.stages["attach"]["reused"] == 0
    for name in ("ids", "kept", "kind", "distance"):
        assert np.array_equal(getattr(again, name), getattr(whole, name)), name
    assert again.stats == whole.stats


@pytest.mark.slow
def test_killed_inside_the_shuffle_reruns_to_the_same_duplicates(tmp_path):
    """bench/ingest_scale.py on real Ray, one process per run: SIGKILL to the job once its first buckets task is
    done, then the rerun over the same files. (Identity with the one-process rule at this size is the test above's.)"""
    out = tmp_path / "scale.json"
    args = ["--sizes", "6000", "--block-videos", "2000", "--partition-videos", "1500", "--cpus", "1",
            "--kill-stages", "buckets", "--identity-max", "0", "--work", str(tmp_path / "w"), "--json", str(out)]
    run = subprocess.run([sys.executable, "bench/ingest_scale.py", *args], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads(out.read_text())
    [row], [kill] = res["rows"], res["kills"]
    assert row["false_merges"] == 0 and row["stats"]["near"] == 96 and row["stats"]["exact"] == 24, row
    assert all(v == 1.0 for k, v in row.items() if k.startswith("recall_")), row
    assert kill["killed"] and kill["tasks_done_at_kill"] < row["partitions"], kill
    assert kill["reused_on_rerun"] >= 1 and kill["same_duplicates"], kill
