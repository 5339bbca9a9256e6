"""Step fingerprint: sha256 of the bytes and the perceptual signature (ingest/signature.py).

The signature's frames are the ones a player shows at its sample times (`videomae.video.decode_frames_at_times`:
presentation timestamps), over the duration that decodes (the probe step measured it), so a copy with frames lost in
the middle, or with a variable frame rate, keeps every other sample where the original has it. They are read through
a `videomae.video.FrameReader`: if the fast path (decord) fails on a corrupt stretch the probe's check did not cross,
the frames are counted and the record takes what decodes, then the samples are read again over that length.
"""

from __future__ import annotations

from ingest import signature
from ingest.config import IngestConfig
from ingest.records import VideoRecord
from ingest.steps.probe import clip_span, record_length, set_length, too_short_detail
from videomae import storage, video
from videomae.reasons import DECODE_ERROR, TOO_SHORT


def fingerprint_record(rec: VideoRecord, cfg: IngestConfig) -> VideoRecord:
    if not rec.ok:
        return rec
    d = cfg.dedupe
    # Reading the file (a download from an object store, the hash) is storage's work: an error there propagates and
    # stops the job, naming the file. Only what the decoders say about the bytes rejects the input.
    with storage.local_file(rec.uri, cfg.source(rec.source).storage_options) as local:
        rec.sha256 = storage.sha256_file(local)
        try:
            reader = video.FrameReader(local, record_length(rec), backend=cfg.decode_backend, rotation=rec.rotation)
            times = signature.sample_times(rec.duration_s, d.interval_s, d.max_samples)
            frames = reader.at_times(times)
            if reader.length != record_length(rec):  # the fast path failed: counted; sample the real duration
                set_length(rec, reader.length)
                times = signature.sample_times(rec.duration_s, d.interval_s, d.max_samples)
                frames = reader.at_times(times)
        except video.VideoError as e:
            return rec.reject(DECODE_ERROR, e.detail)
        except OSError as e:  # a decoder's own error on a damaged stream (PyAV raises OSError subclasses)
            return rec.reject(DECODE_ERROR, f"{type(e).__name__}: {e}")
    span = clip_span(cfg.clips.num_frames, cfg.stride_for(cfg.source(rec.source)))
    if rec.num_frames < span:  # the count found fewer frames than the claim
        return rec.reject(TOO_SHORT, too_short_detail(rec, span))
    if frames.shape[0] == 0 or frames.ndim != 4 or frames.shape[-1] != 3:
        return rec.reject(DECODE_ERROR, f"decoder returned {frames.shape} for {len(times)} sample times")
    rec.signature = signature.to_bytes(signature.compute(frames))
    return rec
