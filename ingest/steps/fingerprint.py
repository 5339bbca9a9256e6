"""Step fingerprint: sha256 of the bytes and the perceptual signature (ingest/signature.py).

The frames for the signature are decoded here together with the last frame, so a file that probes fine but
is cut short (truncated mid-stream) is caught before it can be kept: reason `decode_error`.
"""

from __future__ import annotations

from ingest import signature
from ingest.config import IngestConfig
from ingest.records import DECODE_ERROR, VideoRecord
from videomae import storage, video


def fingerprint_record(rec: VideoRecord, cfg: IngestConfig) -> VideoRecord:
    if not rec.ok:
        return rec
    d = cfg.dedupe
    times = signature.sample_times(rec.duration_s, d.interval_s, d.max_samples)
    indices = video.frame_indices_at_times(times, rec.fps, rec.num_frames) or [0]
    last = rec.num_frames - 1
    try:
        with storage.local_file(rec.uri, cfg.source(rec.source).storage_options) as local:
            rec.sha256 = storage.sha256_file(local)
            frames = video.decode_frames(local, [*indices, last], backend=cfg.decode_backend)
    except video.VideoError as e:
        return rec.reject(DECODE_ERROR, e.detail)
    except OSError as e:
        return rec.reject(DECODE_ERROR, f"{type(e).__name__}: {e}")
    if frames.shape[0] != len(indices) + 1 or frames.ndim != 4 or frames.shape[-1] != 3:
        return rec.reject(DECODE_ERROR, f"decoder returned {frames.shape} for {len(indices) + 1} frames")
    rec.signature = signature.to_bytes(signature.compute(frames[:-1]))
    return rec
