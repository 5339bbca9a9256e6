"""Dedupe without Ray: signature robustness on the planted copies, no false merges, LSH recall, survivor rule."""

from __future__ import annotations

import numpy as np

from ingest import dedupe, signature
from ingest.config import Dedupe
from ingest.records import VideoRecord


def _sig(r):
    return signature.from_bytes(r.signature)


def _planted_pairs(planted):
    return [(p["copy"], p["original"]) for p in planted["near"] + planted["exact"]] + [
        (p["train"], p["val"]) for p in planted["leaks"]
    ]


def test_every_planted_copy_is_within_threshold(fingerprinted, planted):
    cfg, recs = fingerprinted
    kinds = {p["kind"] for p in planted["near"]}
    assert {"reencode_lowbitrate", "resize_half", "crop_border", "fps_change", "trim_start", "truncated_stream",
            "shift_3s", "missing_middle", "corrupt_middle"} <= kinds  # fmt: skip
    for copy, orig in _planted_pairs(planted):
        d = signature.distance(_sig(recs[copy]), _sig(recs[orig]), **dedupe.alignment(cfg.dedupe))
        assert d < cfg.dedupe.threshold / 2, (copy, orig, d)  # with a margin, not just under the line


def test_shifted_and_damaged_copies_need_the_new_alignment(fingerprinted, planted):
    """The old rule (a trimmed start of at most 2 s, the mean over every aligned sample) misses them by far."""
    cfg, recs = fingerprinted
    old = {"max_offset": 4, "min_overlap": 3}
    for p in planted["near"]:
        if p["kind"] in ("shift_3s", "missing_middle", "corrupt_middle"):
            a, b = _sig(recs[p["copy"]]), _sig(recs[p["original"]])
            assert signature.distance(a, b, **old) > cfg.dedupe.threshold, p
    corrupt = next(p for p in planted["near"] if p["kind"] == "corrupt_middle")
    assert recs[corrupt["copy"]].frames_counted  # the damage was found, and the copy measured by what decodes


def test_distinct_videos_are_far_apart(fingerprinted, planted):
    cfg, recs = fingerprinted
    copies = {c for c, _ in _planted_pairs(planted)}
    names = sorted(n for n in recs if n not in copies)
    sigs, lens = signature.pad([_sig(recs[n]) for n in names], 16)
    i, j = np.triu_indices(len(names), 1)
    d = signature.batch_distance(sigs[i], lens[i], sigs[j], lens[j], **dedupe.alignment(cfg.dedupe))
    k = int(np.argmin(d))
    # Same class, same motion, other colours and positions: must stay well apart (synthetic data look alike).
    assert d[k] > 1.25 * cfg.dedupe.threshold, (names[i[k]], names[j[k]], d[k])


def test_distance_properties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (10, signature.L, signature.D), np.uint8)
    assert signature.distance(a, a, 4) == 0.0
    assert signature.distance(a[2:], a, 4) == 0.0  # a trimmed start is a time offset
    assert signature.distance(a[2:], a, 1) > 0.1  # ... only within max_offset
    b = rng.integers(0, 255, a.shape, np.uint8)
    b[:, :2] = a[:, 2:]  # B's crop levels 0, 1 are A's levels 2, 3: a border crop of 1 - 0.81
    assert signature.distance(b, a, 0, max_shift=2) == 0.0
    assert signature.distance(b, a, 0, max_shift=1) > 0.1
    assert signature.distance(a[:2], a, 4, min_overlap=3) == 0.0  # short videos need only their own length
    assert signature.distance(a, rng.integers(0, 255, a.shape, np.uint8), 4) > 0.2
    # A copy starting 6 samples later: beyond an offset of 4, found with 6; overlap_share bounds the edges.
    assert signature.distance(a[6:], a, 4) > 0.1 and signature.distance(a[6:], a, 6, overlap_share=0.5) == 0.0
    assert signature.distance(a[:3], a[7:], 9, overlap_share=0.5) > 0.1  # no overlap of the same content
    # A stretch of garbage in the middle: the plain mean pays for it, the best 60% of samples do not.
    damaged = a.copy()
    damaged[4:7] = rng.integers(0, 255, damaged[4:7].shape, np.uint8)
    assert signature.distance(damaged, a, 4) > 0.05 and signature.distance(damaged, a, 4, match_share=0.6) == 0.0
    # A stretch cut out: what follows moves up by two samples; the longer side still aligns at one offset.
    cut = np.concatenate([a[:3], a[5:]])
    assert signature.distance(cut, a, 4) > 0.05 and signature.distance(cut, a, 4, match_share=0.6) == 0.0


def test_lsh_finds_planted_pairs_among_candidates(fingerprinted, planted):
    cfg, recs = fingerprinted
    names = sorted(recs)
    sigs, lens = signature.pad([_sig(recs[n]) for n in names], 16)
    keys, owners = dedupe.lsh_keys(sigs, lens, cfg.dedupe)
    pairs, _ = dedupe.candidate_pairs(keys, owners, cfg.dedupe.max_bucket)
    found = {(names[a], names[b]) for a, b in pairs.tolist()}
    for copy, orig in _planted_pairs(planted):
        assert tuple(sorted((copy, orig))) in found, (copy, orig)
    n = len(names)
    assert len(pairs) < n * (n - 1) / 2 / 2  # buckets prune: well under all pairs


def test_candidate_pairs_skip_huge_buckets():
    keys = np.array([5] * 10 + [7, 7], np.uint64)
    owners = np.array(list(range(10)) + [3, 4], np.int64)
    pairs, skipped = dedupe.candidate_pairs(keys, owners, max_bucket=4)
    assert pairs.tolist() == [[3, 4]] and skipped == 1
    pairs, skipped = dedupe.candidate_pairs(keys, owners, max_bucket=16)
    assert len(pairs) == 45 and skipped == 0


def _rec(name, split="train", kind="unlabeled", size=(64, 64), source_index=0, sig=None, sha=None):
    r = VideoRecord(uri=f"/x/{name}", source=f"s{source_index}", source_index=source_index, kind=kind,
                    split=split, key=name)  # fmt: skip
    r.width, r.height = size
    r.sha256 = sha or name
    r.signature = signature.to_bytes(sig)
    return r


def test_survivor_rule_and_leaks():
    rng = np.random.default_rng(1)
    base = [rng.integers(0, 255, (6, signature.L, signature.D), np.uint8) for _ in range(5)]
    near = [np.clip(b.astype(int) + rng.integers(-3, 4, b.shape), 0, 255).astype(np.uint8) for b in base]
    recs = [
        # group 0: unlabeled big vs labeled small -> labeled wins
        _rec("u_big", size=(320, 240), sig=base[0]),
        _rec("l_small", kind="labeled", size=(64, 64), sig=near[0], source_index=1),
        # group 1: train vs val -> val wins (a leak)
        _rec("train", kind="labeled", sig=base[1]),
        _rec("val", kind="labeled", split="val", sig=near[1]),
        # group 2: same everything but resolution -> bigger wins
        _rec("small", size=(64, 48), sig=base[2]),
        _rec("big", size=(128, 96), sig=near[2]),
        # group 3: tie to source order
        _rec("second", source_index=2, sig=base[3]),
        _rec("first", source_index=1, sig=near[3]),
        # exact copies (same sha): kind exact, distance 0
        _rec("orig", sig=base[4], sha="h"),
        _rec("copy", sig=base[4], sha="h", source_index=3),
    ]
    res = dedupe.find_duplicates(recs, Dedupe(threshold=0.04))
    ids = {r.video_id: r.key for r in recs}
    dropped = {ids[d["video_id"]]: (ids[d["kept_video_id"]], d["kind"]) for d in res.duplicates}
    assert dropped == {
        "u_big": ("l_small", "near"),
        "train": ("val", "near"),
        "small": ("big", "near"),
        "second": ("first", "near"),
        "copy": ("orig", "exact"),
    }
    assert sorted(ids[v] for v in res.kept) == ["big", "first", "l_small", "orig", "val"]
    assert res.stats["leaks"] == 1
    assert all(d["distance"] <= 0.04 for d in res.duplicates)


def test_leak_through_a_dropped_val_copy():
    # val1 ~ val2 ~ train, but val1 is not close to train: train must still go (it duplicates val2).
    rng = np.random.default_rng(2)
    a = rng.integers(60, 190, (6, signature.L, signature.D)).astype(int)
    v1, v2, t = a, a + 20, a + 40  # distances 20/255 = 0.078 apart, threshold 0.1 links neighbours only
    recs = [
        _rec("val1", split="val", size=(128, 128), sig=v1.astype(np.uint8)),
        _rec("val2", split="val", sig=v2.astype(np.uint8)),
        _rec("train", sig=t.astype(np.uint8)),
    ]
    res = dedupe.find_duplicates(recs, Dedupe(threshold=0.1, width=0.5))
    ids = {r.video_id: r.key for r in recs}
    dropped = {ids[d["video_id"]]: ids[d["kept_video_id"]] for d in res.duplicates}
    assert dropped == {"val2": "val1", "train": "val1"}
    assert [ids[v] for v in res.kept] == ["val1"]


def test_no_chaining_of_distinct_videos():
    # a ~ b ~ c with a far from c, all train: a keeps b; c is not merged into a through b.
    rng = np.random.default_rng(3)
    a = rng.integers(60, 190, (6, signature.L, signature.D)).astype(int)
    recs = [_rec(n, sig=(a + k * 20).astype(np.uint8), size=(100 - k, 100)) for k, n in enumerate("abc")]
    res = dedupe.find_duplicates(recs, Dedupe(threshold=0.1, width=0.5))
    ids = {r.video_id: r.key for r in recs}
    assert sorted(ids[v] for v in res.kept) == ["a", "c"]
