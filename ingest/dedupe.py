"""Dedupe: exact (same sha256) and near (same content re-encoded, resized, cropped, trimmed, re-timed).

The rule, in one process over the fingerprinted records (plain numpy, no Ray): `find_duplicates`. The ingest's
dedupe step runs the same rule as stages over files (ingest/dedupe_stages.py), reusing `lsh_keys`, `candidate_pairs`
and the distance; tests check the two agree row for row. Stages:
1. exact groups by sha256;
2. LSH candidates: every (indexed sample, crop level) vector of a signature is hashed by `bands` p-stable keys, each
   the concatenation of `rows` quantised coordinates floor((v_j + b_j) / width) on random dimensions (an
   L1-sensitive family). Two videos are candidates when they share any key. Keys are sorted once, so the cost
   grows as N log N with the number of videos, not N^2; buckets larger than `max_bucket` (content shared by
   very many videos, e.g. black frames) are skipped rather than expanded quadratically;
3. verification: the full signature distance (best time offset and crop shift, over the best `match_share` of the
   aligned samples) below `threshold`;
4. survivors, by one stated rule applied greedily in priority order (no transitive chaining, so every
   dropped copy is within `threshold` of the video it is recorded against):
       eval split (val/test) over train, then the source kind's `survivor_rank` (labeled over unlabeled),
       an intact file over a damaged one (whose header's claim failed: `frames_counted`), more pixels,
       longer (the decoded duration in whole seconds: the most complete copy), earlier source in the config, then uri;
5. leaks: a train video that duplicates any eval video is dropped, even if that eval video was itself
   dropped as a copy of another one (its kept id then names the eval survivor).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ingest import signature
from ingest.config import SOURCE_KINDS, Dedupe
from ingest.records import VideoRecord

log = logging.getLogger(__name__)

EVAL_SPLITS = ("val", "test", "validation")


def priority_key(rec: VideoRecord) -> tuple:
    """Lower sorts first = kept first. See the module docstring for the rule."""
    return (
        0 if rec.split in EVAL_SPLITS else 1,
        SOURCE_KINDS[rec.kind].survivor_rank,
        rec.frames_counted,
        -(rec.width * rec.height),
        -int(rec.duration_s + 1e-6),  # whole seconds: a lower-rate copy whose last frame lasts longer is not longer
        rec.source_index,
        rec.uri,
    )


@dataclass
class DedupeResult:
    kept: list[str]  # video ids
    duplicates: list[dict]  # video_id, kept_video_id, kind, distance, uri, source, split
    stats: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- LSH


def indexed_samples(k: int, cfg: Dedupe) -> np.ndarray:
    """The sample positions (of K) that enter the LSH index: the first `lsh_samples`, then every `lsh_every`-th. A copy
    starting s samples later has its first lsh_samples samples at the original's s .. s + lsh_samples - 1, and that
    run holds at least lsh_samples // lsh_every of the original's indexed positions."""
    first = np.arange(min(k, cfg.lsh_samples))
    later = np.arange(cfg.lsh_samples, k, cfg.lsh_every) if cfg.lsh_every else np.zeros(0, int)
    return np.concatenate([first, later]).astype(int)


def lsh_keys(sigs: np.ndarray, lens: np.ndarray, cfg: Dedupe, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, L, D) signatures -> (keys uint64 (M,), owner int64 (M,)) over the indexed samples (`indexed_samples`)
    and the crop levels a border crop can map onto (0 .. max_shift)."""
    rng = np.random.default_rng(cfg.seed)
    levels = min(signature.L, 3)
    picked = indexed_samples(sigs.shape[1], cfg)
    dims = np.stack([rng.choice(signature.D, cfg.rows, replace=False) for _ in range(cfg.bands)])  # (B, R)
    offsets = rng.uniform(0, cfg.width, size=(cfg.bands, cfg.rows))
    mult = rng.integers(1, 2**63 - 1, size=(cfg.bands, cfg.rows), dtype=np.uint64) | np.uint64(1)
    band_salt = rng.integers(1, 2**63 - 1, size=cfg.bands, dtype=np.uint64)
    keys, owners = [], []
    for lo in range(0, len(sigs), chunk):
        v = sigs[lo : lo + chunk][:, picked, :levels].astype(np.float32) / 255.0  # (n, k, levels, D)
        q = np.floor((v[..., dims] + offsets) / cfg.width).astype(np.int64)  # (n, k, levels, B, R)
        with np.errstate(over="ignore"):
            h = (q.astype(np.uint64) * mult).sum(axis=-1, dtype=np.uint64) + band_salt  # (n, k, levels, B)
        valid = picked[None, :] < lens[lo : lo + chunk, None]  # (n, k)
        n = h.shape[0]
        own = np.broadcast_to(np.arange(lo, lo + n)[:, None, None, None], h.shape)
        mask = np.broadcast_to(valid[:, :, None, None], h.shape)
        keys.append(h[mask])
        owners.append(own[mask])
    if not keys:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return np.concatenate(keys), np.concatenate(owners).astype(np.int64)


def candidate_pairs(keys: np.ndarray, owners: np.ndarray, max_bucket: int) -> tuple[np.ndarray, int]:
    """Unique (i < j) pairs that share a key, as an (P, 2) array, and the number of skipped large buckets."""
    if len(keys) == 0:
        return np.zeros((0, 2), np.int64), 0
    if len(owners) > 1 and bool(np.all(owners[1:] >= owners[:-1])):
        # lsh_keys emits keys in owner order, so a stable sort on keys alone already orders owners within a key
        # (several times faster than a two-key lexsort at 10^8 keys).
        order = np.argsort(keys, kind="stable")
    else:
        order = np.lexsort((owners, keys))
    keys, owners = keys[order], owners[order]
    first = np.ones(len(keys), bool)
    first[1:] = (keys[1:] != keys[:-1]) | (owners[1:] != owners[:-1])
    keys, owners = keys[first], owners[first]  # one entry per (key, video)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    pairs = []
    two = starts[sizes == 2]
    pairs.append(np.stack([owners[two], owners[two + 1]], axis=1))
    skipped = int((sizes > max_bucket).sum())
    mid = (sizes > 2) & (sizes <= max_bucket)
    for s, m in zip(starts[mid], sizes[mid], strict=True):
        members = owners[s : s + m]
        i, j = np.triu_indices(m, 1)
        pairs.append(np.stack([members[i], members[j]], axis=1))
    p = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    p = np.sort(p, axis=1)
    n = int(owners.max()) + 1
    code = np.unique(p[:, 0] * n + p[:, 1])
    return np.stack([code // n, code % n], axis=1), skipped


def alignment(cfg: Dedupe) -> dict:
    """The config's alignment rule as `signature.batch_distance` / `signature.distance` keywords."""
    return {"max_offset": int(round(cfg.max_offset_s / cfg.interval_s)), "min_overlap": cfg.min_overlap,
            "match_share": cfg.match_share, "overlap_share": cfg.overlap_share}  # fmt: skip


def verify(pairs: np.ndarray, sigs: np.ndarray, lens: np.ndarray, cfg: Dedupe, batch: int = 4096) -> np.ndarray:
    """Signature distance of each candidate pair."""
    out = np.empty(len(pairs))
    for lo in range(0, len(pairs), batch):
        i, j = pairs[lo : lo + batch, 0], pairs[lo : lo + batch, 1]
        out[lo : lo + batch] = signature.batch_distance(sigs[i], lens[i], sigs[j], lens[j], **alignment(cfg))
    return out


def near_neighbors(sigs: np.ndarray, lens: np.ndarray, cfg: Dedupe) -> tuple[dict[int, dict[int, float]], dict]:
    """Verified near-duplicate edges {i: {j: distance}} among N signatures, plus stage counts."""
    keys, owners = lsh_keys(sigs, lens, cfg)
    pairs, skipped = candidate_pairs(keys, owners, cfg.max_bucket)
    dist = verify(pairs, sigs, lens, cfg)
    edges: dict[int, dict[int, float]] = defaultdict(dict)
    for (i, j), d in zip(pairs.tolist(), dist.tolist(), strict=True):
        if d <= cfg.threshold:
            edges[i][j] = d
            edges[j][i] = d
    stats = {"lsh_keys": int(len(keys)), "candidates": int(len(pairs)), "skipped_buckets": skipped}
    stats["near_edges"] = sum(len(v) for v in edges.values()) // 2
    return edges, stats


# ---------------------------------------------------------------------------------------------- survivors


def _dup_row(rec: VideoRecord, kept: VideoRecord, kind: str, dist: float) -> dict:
    return {
        "video_id": rec.video_id,
        "kept_video_id": kept.video_id,
        "kind": kind,
        "distance": float(dist),
        "uri": rec.uri,
        "source": rec.source,
        "split": rec.split,
    }


def find_duplicates(records: list[VideoRecord], cfg: Dedupe) -> DedupeResult:
    """Split fingerprinted, ok records into kept ids and duplicate rows (see the module docstring)."""
    recs = sorted(records, key=priority_key)
    if not cfg.enabled:
        return DedupeResult([r.video_id for r in recs], [], {})
    dups: list[dict] = []
    # 1. exact: the first (highest priority) of each sha256 group stands for the group.
    by_sha: dict[str, VideoRecord] = {}
    exact_of: dict[str, VideoRecord] = {}  # dropped video_id -> exact representative
    reps: list[VideoRecord] = []
    for r in recs:
        if r.sha256 in by_sha:
            exact_of[r.video_id] = by_sha[r.sha256]
        else:
            by_sha[r.sha256] = r
            reps.append(r)
    # 2-3. near edges among representatives (already in priority order).
    sigs, lens = signature.pad([signature.from_bytes(r.signature) for r in reps], cfg.max_samples)
    edges, stats = near_neighbors(sigs, lens, cfg)
    # 4. greedy survivors: a representative not yet claimed keeps itself and claims its unclaimed neighbours.
    keeper: dict[int, tuple[int, float]] = {}  # rep index -> (keeper rep index, distance)
    for i in range(len(reps)):
        if i in keeper:
            continue
        keeper[i] = (i, 0.0)
        for j, d in sorted(edges.get(i, {}).items()):
            if j not in keeper:
                keeper[j] = (i, d)
    # 5. leaks: a kept train video next to any eval video goes, against that eval video's survivor.
    for i, r in enumerate(reps):
        if keeper[i][0] != i or r.split in EVAL_SPLITS:
            continue
        evals = [(d, j) for j, d in edges.get(i, {}).items() if reps[j].split in EVAL_SPLITS]
        if evals:
            d, j = min(evals)
            keeper[i] = (keeper[j][0], d)
    for i, r in enumerate(reps):
        k, d = keeper[i]
        if k != i:
            dups.append(_dup_row(r, reps[k], "near", d))
    rep_index = {r.video_id: i for i, r in enumerate(reps)}
    for r in recs:
        if r.video_id in exact_of:
            ri = rep_index[exact_of[r.video_id].video_id]
            k, d = keeper[ri]
            # An exact copy of a representative that was itself dropped points at the final survivor.
            kind, dist = ("exact", 0.0) if k == ri else ("near", d)
            dups.append(_dup_row(r, reps[k], kind, dist))
    kept = [reps[i].video_id for i in range(len(reps)) if keeper[i][0] == i]
    by_id = {r.video_id: r for r in recs}
    leaks = sum(row["split"] not in EVAL_SPLITS and by_id[row["kept_video_id"]].split in EVAL_SPLITS for row in dups)
    exact = sum(1 for row in dups if row["kind"] == "exact")
    stats.update({"exact": exact, "near": len(dups) - exact, "leaks": leaks})
    dups.sort(key=lambda row: row["video_id"])
    return DedupeResult(sorted(kept), dups, stats)
