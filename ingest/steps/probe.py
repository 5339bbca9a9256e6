"""Step probe: existence, size, and ffprobe facts (streams, duration, fps, frame count, codec, size)."""

from __future__ import annotations

from ingest.config import IngestConfig
from ingest.records import EMPTY, MISSING, TOO_SHORT, UNREADABLE, VideoRecord
from videomae import storage, video


def clip_span(num_frames: int, stride: int) -> int:
    """Frames one clip covers: the first, then num_frames - 1 steps of `stride`."""
    return (num_frames - 1) * stride + 1


def probe_record(rec: VideoRecord, cfg: IngestConfig) -> VideoRecord:
    if not rec.ok:
        return rec
    options = cfg.source(rec.source).storage_options
    try:
        if not storage.is_file(rec.uri, options):
            return rec.reject(MISSING, rec.uri)
        rec.size_bytes = storage.size(rec.uri, options)
    except OSError as e:
        return rec.reject(MISSING, str(e))
    if rec.size_bytes == 0:
        return rec.reject(EMPTY, "0 bytes")
    try:
        with storage.local_file(rec.uri, options) as local:
            info = video.probe(local)
    except video.VideoError as e:
        return rec.reject(e.reason, e.detail)
    rec.duration_s, rec.fps, rec.num_frames = info.duration_s, info.fps, info.num_frames
    rec.width, rec.height, rec.codec = info.width, info.height, info.codec
    if info.fps <= 0 or info.width <= 0 or info.height <= 0:
        return rec.reject(UNREADABLE, f"video stream without rate or size (fps={info.fps}, {info.width}x{info.height})")
    span = clip_span(cfg.clips.num_frames, cfg.stride_for(cfg.source(rec.source)))
    if info.num_frames < span:
        return rec.reject(TOO_SHORT, f"{info.num_frames} frames < {span} for one clip")
    return rec
