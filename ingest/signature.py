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

Distance: mean absolute difference in [0, 1] over the aligned samples and crop levels, minimised over
time offsets |o| <= max_offset and level shifts |s| <= max_shift, with at least `min_overlap` aligned samples.
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
) -> np.ndarray:
    """Distances of P pairs: a, b (P, K, L, D) uint8 padded, len_a, len_b (P,). Returns (P,) float, inf where
    no alignment has enough overlap."""
    p, k = a.shape[:2]
    a = a.astype(np.int16)
    b = b.astype(np.int16)
    need = np.minimum(np.minimum(len_a, len_b), min_overlap)
    best = np.full(p, np.inf)
    pos = np.arange(k)
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
        for s in range(-max_shift, max_shift + 1):
            if abs(s) >= L:
                continue
            # A's crop level l + s against B's level l.
            if s >= 0:
                diff = np.abs(aa[:, :, s:] - bb[:, :, : L - s])
            else:
                diff = np.abs(aa[:, :, : L + s] - bb[:, :, -s:])
            per_sample = diff.mean(axis=(2, 3)) / 255.0  # (P, K')
            d = (per_sample * valid).sum(1) / np.maximum(count, 1)
            best = np.where(ok & (d < best), d, best)
    return best


def distance(a: np.ndarray, b: np.ndarray, max_offset: int, max_shift: int = 2, min_overlap: int = 3) -> float:
    """Distance between two (K, L, D) signatures (see module doc)."""
    (pa_, la), (pb, lb) = pad([a], max(len(a), len(b))), pad([b], max(len(a), len(b)))
    return float(batch_distance(pa_, la, pb, lb, max_offset, max_shift, min_overlap)[0])
