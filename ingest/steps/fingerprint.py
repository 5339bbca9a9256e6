"""Step fingerprint: sha256 of the bytes and the perceptual signature (ingest/signature.py).

The signature's frames are the ones a player shows at its sample times (`videomae.video.decode_frames_at_times`:
presentation timestamps), over the duration that decodes (the probe step measured it), so a copy with frames lost in
the middle, or with a variable frame rate, keeps every other sample where the original has it.
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
    backend = "pyav" if rec.frames_counted else cfg.decode_backend  # counted with PyAV: read with PyAV
    try:
        with storage.local_file(rec.uri, cfg.source(rec.source).storage_options) as local:
            rec.sha256 = storage.sha256_file(local)
            frames = video.decode_frames_at_times(local, times, backend=backend, rotation=rec.rotation)
    except video.VideoError as e:
        return rec.reject(DECODE_ERROR, e.detail)
    except OSError as e:
        return rec.reject(DECODE_ERROR, f"{type(e).__name__}: {e}")
    if frames.shape[0] == 0 or frames.ndim != 4 or frames.shape[-1] != 3:
        return rec.reject(DECODE_ERROR, f"decoder returned {frames.shape} for {len(times)} sample times")
    rec.signature = signature.to_bytes(signature.compute(frames))
    return rec
