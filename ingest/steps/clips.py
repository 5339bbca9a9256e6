"""The clips of one video (for the clips step, ingest/steps/write.py): choose clip starts, decode their frames once
per video, resize the short side, JPEG-encode.

Starts are evenly spread over the frames a clip can start at, so they depend only on (num_frames, stride,
count): the same video always yields the same clips, and clip ids follow from (video_id, start, stride).
`num_frames` is what decodes: the probe step verified it, and if a decode here still finds frames missing (a corrupt
stretch the probe's check did not cross), `videomae.video.FrameReader` counts them once and the clips are re-planned
within the frames that exist (the record takes the new length).
"""

from __future__ import annotations

import numpy as np

from ingest.config import IngestConfig
from ingest.records import VideoRecord, make_clip_id
from ingest.steps.probe import clip_span, record_length, set_length
from videomae import storage, video


def clips_for(rec: VideoRecord, cfg: IngestConfig) -> int:
    source = cfg.source(rec.source)
    per_second = source.clips_per_second or cfg.clips.clips_per_second
    if per_second:
        n = max(1, int(np.floor(rec.duration_s * per_second)))
    else:
        n = source.clips_per_video or cfg.clips.clips_per_video
    return min(n, cfg.clips.max_clips_per_video)


def clip_starts(num_frames: int, span: int, count: int) -> list[int]:
    """`count` evenly spaced starts in [0, num_frames - span]; one clip is centred; duplicates collapse."""
    last = num_frames - span
    if last < 0:
        return []
    if count == 1:
        return [last // 2]
    return sorted({int(round(i * last / (count - 1))) for i in range(count)})


def make_clips(rec: VideoRecord, cfg: IngestConfig) -> list[dict]:
    """Clip rows (CLIPS_SCHEMA) for one kept video: [] if, once counted, not one clip fits (the caller rejects it
    too_short; `rec` then holds the count). Raises videomae.video.VideoError when frames fail to decode."""
    stride = cfg.stride_for(cfg.source(rec.source))
    t = cfg.clips.num_frames
    with storage.local_file(rec.uri, cfg.source(rec.source).storage_options) as local:
        reader = video.FrameReader(local, record_length(rec), backend=cfg.decode_backend, rotation=rec.rotation)
        frames = None
        while frames is None:  # twice at most: a read that finds frames missing counts them, then plans again
            set_length(rec, reader.length)
            starts = clip_starts(rec.num_frames, clip_span(t, stride), clips_for(rec, cfg))
            if not starts:
                return []
            wanted = sorted({i for s in starts for i in video.clip_indices(start=s, clip_len=t, stride=stride)})
            frames = reader.read(wanted)  # (len(wanted), H, W, 3), or None: fewer frames than recorded
    frames = video.resize_frames_short_side(frames, cfg.clips.short_side)
    jpegs = {i: video.encode_jpeg(f, cfg.clips.jpeg_quality) for i, f in zip(wanted, frames, strict=True)}
    h, w = frames.shape[1:3]
    return [
        {
            "clip_id": make_clip_id(rec.video_id, s, stride),
            "video_id": rec.video_id,
            "source": rec.source,
            "split": rec.split,
            "label": rec.label,
            "start_frame": s,
            "stride": stride,
            "num_frames": t,
            "fps": rec.fps,
            "height": h,
            "width": w,
            "frames": [jpegs[i] for i in video.clip_indices(start=s, clip_len=t, stride=stride)],
        }
        for s in starts
    ]
