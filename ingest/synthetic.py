"""A synthetic scale source: what the fingerprint step would give for N videos, made without decoding any video, so
dedupe's stages can be measured at 10^5..10^7 (bench/ingest_scale.py) and checked against the one-process rule
(tests/ingest/test_dedupe_stages.py). It generates inputs only; every result comes from the real steps.

Videos are numbered in the survivor rule's priority order (ids): the first `eval_share` are eval-split videos, the
rest train. A video's signature is a random walk over its samples (neighbouring samples 0.5 s apart differ by
~0.056, above the 0.04 threshold, as moving content does) from a starting layout; `family` videos in a row share
that starting layout (one background or layout, different motion: near misses that must stay apart). The last
`copy_share` of each block are copies of originals of the block before (of the block itself for the first), so
copies cross blocks and train copies of eval videos are train/val leaks. Copies come in the kinds the fingerprint
meets: `exact` (the same file: same bytes and sha256), `reencoded` (noise), `trim` (the first sample cut),
`shift` (starting 3 s later), `damaged` (a corrupt 2 s stretch in the middle), each with re-encoding noise.
Block b is a function of (seed, b) and the layout only, so any process can make any block.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ingest import signature

KINDS = ("exact", "reencoded", "trim", "shift", "damaged")


@dataclass(frozen=True)
class Synthetic:
    n: int
    block_videos: int
    k: int = 16  # samples per signature (dedupe.max_samples)
    seed: int = 0
    copy_share: float = 0.02
    eval_share: float = 0.02
    family: int = 4

    @property
    def starts(self) -> tuple[int, ...]:
        return (*range(0, self.n, self.block_videos), self.n) if self.n else (0,)

    def copies_in(self, b: int) -> int:
        size = self.starts[b + 1] - self.starts[b]
        return int(size * self.copy_share) // len(KINDS) * len(KINDS)

    def is_eval(self, ids: np.ndarray) -> np.ndarray:
        return ids < int(self.n * self.eval_share)

    def sha(self, ids: np.ndarray) -> np.ndarray:
        return np.array([hashlib.sha256(f"{self.seed}:{i}".encode()).hexdigest() for i in ids.tolist()], dtype="S64")

    def _originals(self, b: int) -> np.ndarray:
        """Block b's originals (its rows but the copies at its end): (m, k, L, D) uint8."""
        lo, hi = self.starts[b], self.starts[b + 1]
        m = hi - lo - self.copies_in(b)
        rng = np.random.default_rng([self.seed, b, 0])
        fam = -(-m // self.family)
        start = rng.integers(20, 235, (fam, 1, signature.L, signature.D), dtype=np.int16)
        start = np.repeat(start, self.family, axis=0)[:m]  # `family` neighbours share a starting layout
        walk = rng.integers(-30, 31, (m, self.k, 1, signature.D), dtype=np.int16).cumsum(1, dtype=np.int16)
        return np.clip(start + walk, 0, 255).astype(np.uint8)

    def block(self, b: int) -> dict[str, np.ndarray]:
        """Block b: ids, sigs (n, k, L, D), lens, sha, eval, and the planted copies (copy id, original id, kind)."""
        lo, hi = self.starts[b], self.starts[b + 1]
        sigs = np.zeros((hi - lo, self.k, signature.L, signature.D), np.uint8)
        lens = np.full(hi - lo, self.k, np.int64)
        orig = self._originals(b)
        sigs[: len(orig)] = orig
        ids = np.arange(lo, hi, dtype=np.int64)
        sha = self.sha(ids)
        c = self.copies_in(b)
        src_b = b - 1 if b > 0 else b
        src_lo = self.starts[src_b]
        pool = orig if src_b == b else self._originals(src_b)
        rng = np.random.default_rng([self.seed, b, 1])
        src = rng.choice(len(pool), c, replace=False) if c else np.zeros(0, np.int64)
        copy_rows = np.arange(hi - lo - c, hi - lo)
        kinds = np.repeat(np.array(KINDS), c // len(KINDS))
        k = self.k
        for kind in KINDS:
            sel = kinds == kind
            s_, rows = src[sel], copy_rows[sel]
            base = pool[s_].astype(np.int16)
            if kind == "exact":
                sigs[rows] = pool[s_]
                sha[rows] = self.sha(src_lo + s_)
                continue
            if kind == "damaged":
                mid = k // 2 - 2
                base[:, mid : mid + 4] = rng.integers(0, 256, base[:, mid : mid + 4].shape, dtype=np.int16)
                length = k
            elif kind in ("trim", "shift"):
                cut = 1 if kind == "trim" else min(6, k - 3)  # 6 samples: 3 s later at 0.5 s per sample
                moved = np.zeros_like(base)
                moved[:, : k - cut] = base[:, cut:]
                base, length = moved, k - cut
            else:
                length = k
            noisy = np.clip(base + rng.integers(-4, 5, base.shape, dtype=np.int16), 0, 255).astype(np.uint8)
            noisy[:, length:] = 0
            sigs[rows], lens[rows] = noisy, length
        planted = np.zeros(len(copy_rows), dtype=[("copy", np.int64), ("original", np.int64), ("kind", "U10")])
        planted["copy"], planted["original"], planted["kind"] = lo + copy_rows, src_lo + src, kinds
        return {"ids": ids, "sigs": sigs, "lens": lens, "sha": sha, "eval": self.is_eval(ids), "planted": planted}


def records(syn: Synthetic) -> list:
    """The whole corpus as fingerprinted `VideoRecord`s whose priority order is their id order (tests, small N)."""
    from ingest.records import VideoRecord

    out = []
    for b in range(len(syn.starts) - 1):
        blk = syn.block(b)
        for i, sig, n, sha, ev in zip(blk["ids"].tolist(), blk["sigs"], blk["lens"].tolist(), blk["sha"].tolist(),
                                      blk["eval"].tolist(), strict=True):
            out.append(VideoRecord(uri=f"syn://{i:010d}.mp4", source="synthetic", source_index=0, kind="unlabeled",
                                   split="val" if ev else "train", key=f"{i:010d}", sha256=sha.decode(),
                                   signature=signature.to_bytes(sig[:n])))
    return out


def score(planted: np.ndarray, dup_ids: np.ndarray, kept_ids: np.ndarray, keeper_of) -> dict:
    """Recall of the planted copies per kind (a copy found when it is dropped against its original or its original's
    keeper) and false merges (dropped videos that are no planted copy)."""
    dropped = dict(zip(dup_ids.tolist(), kept_ids.tolist(), strict=True))
    out = {}
    for kind in KINDS:
        sel = planted[planted["kind"] == kind]
        hits = sum(1 for c, o in zip(sel["copy"].tolist(), sel["original"].tolist(), strict=True)
                   if dropped.get(c) == keeper_of(o))
        out[f"recall_{kind}"] = round(hits / max(1, len(sel)), 4)
    out["false_merges"] = len(set(dropped) - set(planted["copy"].tolist()))
    return out
