"""Perceptual video signatures and their distance.

Signature: frames at fixed times t_k = k * interval (k < K) from the start, not at fixed fractions of the
duration, so that an fps change leaves the sample times alone and trimming the start becomes a whole-sample
offset. For each frame and each of L centred crops (side fractions LEVELS = 0.9^l), the mean R, G, B of a
GRID x GRID cell grid: D = 3 * GRID^2 numbers, stored as uint8 (K, L, D).

Why these choices:
- cell means of a low-resolution grid survive low-bitrate re-encoding and resizing (they are averages);
- the crop ladder makes a border crop a shift along L: if B is A with a (1 - 0.9^s) border cut, B's crop l
  matches A's crop l + s, so the distance searches level shifts as it searches time offsets;
- colour, not luma only, keeps apart videos with the same layout in different colours (a red and a green
  square moving the same way).

Distance: mean absolute difference in [0, 1] over the best `match_share` of the aligned samples (all crop levels),
minimised over time offsets |o| <= max_offset and level shifts |s| <= max_shift. An alignment counts when its aligned
samples cover at least `overlap_share` of the shorter signature and number at least `min_overlap` (or the shorter
length); the mean never keeps fewer samples than that. Why:
- any offset the signatures allow (not only a trimmed start): a copy that starts seconds later is the same video;
  the overlap share keeps a few chance-aligned samples at the edges from making two videos copies;
- the best share, not every aligned sample: a copy with a corrupt stretch (garbage or a frozen frame on screen), or
  with a stretch cut out (what follows moves up, so it aligns at another offset), still matches elsewhere; 0.6
  tolerates a damaged stretch of 40% of the overlap. `match_share=1` is the plain mean over the overlap.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

GRID = 4
LEVELS = (1.0, 0.9, 0.81, 0.729)
L = len(LEVELS)
D = 3 * GRID * GRID
_WORK = 120  # frames are first box-filtered to this square; crops are cut from it


def sample_times(duration_s: float, interval_s: float, max_samples: int) -> list[float]:
    n = int(np.floor(duration_s / interval_s + 1e-9)) + 1
    return [k * interval_s for k in range(min(n, max_samples))]


def frame_features(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (L, D) uint8 cell means of each centred crop."""
    small = np.asarray(Image.fromarray(frame).resize((_WORK, _WORK), Image.BOX), dtype=np.float32)
    out = np.empty((L, D), dtype=np.uint8)
    for li, frac in enumerate(LEVELS):
        side = int(round(_WORK * frac))
        o = (_WORK - side) // 2
        crop = small[o : o + side, o : o + side]  # (side, side, 3)
        edges = np.linspace(0, side, GRID + 1).round().astype(int)
        rows = np.add.reduceat(crop, edges[:-1], axis=0)
        cells = np.add.reduceat(rows, edges[:-1], axis=1)  # (GRID, GRID, 3) sums
        counts = np.diff(edges)[:, None] * np.diff(edges)[None, :]
        out[li] = np.clip(cells / counts[..., None] + 0.5, 0, 255).astype(np.uint8).reshape(-1)
    return out


def compute(frames: np.ndarray) -> np.ndarray:
    """(K, H, W, 3) uint8 frames at the sample times -> (K, L, D) uint8 signature."""
    return np.stack([frame_features(f) for f in frames])


def to_bytes(sig: np.ndarray) -> bytes:
    return np.ascontiguousarray(sig, dtype=np.uint8).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    arr = np.frombuffer(data, dtype=np.uint8)
    if arr.size % (L * D):
        raise ValueError(f"signature of {arr.size} bytes is not a multiple of {L * D}")
    return arr.reshape(-1, L, D)


def pad(sigs: list[np.ndarray], k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack signatures of different lengths into (N, K, L, D) with a (N,) length vector."""
    k = k or max((s.shape[0] for s in sigs), default=1)
    out = np.zeros((len(sigs), k, L, D), dtype=np.uint8)
    lens = np.zeros(len(sigs), dtype=np.int64)
    for i, s in enumerate(sigs):
        n = min(k, s.shape[0])
        out[i, :n] = s[:n]
        lens[i] = n
    return out, lens


def batch_distance(
    a: np.ndarray,
    len_a: np.ndarray,
    b: np.ndarray,
    len_b: np.ndarray,
    max_offset: int,
    max_shift: int = 2,
    min_overlap: int = 3,
    match_share: float = 1.0,
    overlap_share: float = 0.0,
) -> np.ndarray:
    """Distances of P pairs: a, b (P, K, L, D) uint8 padded, len_a, len_b (P,). Returns (P,) float, inf where
    no alignment has enough overlap."""
    p, k = a.shape[:2]
    a = a.astype(np.int16)
    b = b.astype(np.int16)
    shorter = np.minimum(len_a, len_b)
    need = np.maximum(np.minimum(shorter, min_overlap), np.ceil(overlap_share * shorter - 1e-9))  # aligned samples
    best = np.full(p, np.inf)
    pos = np.arange(k)
    rows = np.arange(p)
    for o in range(-max_offset, max_offset + 1):
        if abs(o) >= k:
            continue
        # A's sample k + o against B's sample k.
        if o >= 0:
            aa, bb, ka, kb = a[:, o:], b[:, : k - o], pos[: k - o] + o, pos[: k - o]
        else:
            aa, bb, ka, kb = a[:, : k + o], b[:, -o:], pos[: k + o], pos[: k + o] - o
        valid = (ka[None, :] < len_a[:, None]) & (kb[None, :] < len_b[:, None])  # (P, K')
        count = valid.sum(1)
        ok = count >= need
        if not ok.any():
            continue
        # The kept samples: the best match_share of the aligned ones, never fewer than the alignment needs (so at least
        # overlap_share of the shorter video matches, wherever the two are aligned).
        kept = np.minimum(np.maximum(np.ceil(match_share * count - 1e-9), need), count).astype(int)  # (P,)
        for s in range(-max_shift, max_shift + 1):
            if abs(s) >= L:
                continue
            # A's crop level l + s against B's level l.
            if s >= 0:
                diff = np.abs(aa[:, :, s:] - bb[:, :, : L - s])
            else:
                diff = np.abs(aa[:, :, : L + s] - bb[:, :, -s:])
            per_sample = diff.mean(axis=(2, 3)) / 255.0  # (P, K')
            if match_share >= 1.0:
                d = (per_sample * valid).sum(1) / np.maximum(count, 1)
            else:
                ranked = np.sort(np.where(valid, per_sample, np.inf), axis=1)  # (P, K') best first, invalid last
                sums = np.cumsum(np.where(np.isfinite(ranked), ranked, 0.0), axis=1)
                d = sums[rows, np.maximum(kept - 1, 0)] / np.maximum(kept, 1)
            best = np.where(ok & (d < best), d, best)
    return best


def distance(a: np.ndarray, b: np.ndarray, max_offset: int, max_shift: int = 2, min_overlap: int = 3,
             match_share: float = 1.0, overlap_share: float = 0.0) -> float:  # fmt: skip
    """Distance between two (K, L, D) signatures (see module doc)."""
    (pa_, la), (pb, lb) = pad([a], max(len(a), len(b))), pad([b], max(len(a), len(b)))
    return float(batch_distance(pa_, la, pb, lb, max_offset, max_shift, min_overlap, match_share, overlap_share)[0])
