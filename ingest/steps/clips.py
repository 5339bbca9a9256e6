"""The clips of one video (for the clips step, ingest/steps/write.py): choose clip starts, decode their frames once
per video, resize the short side, JPEG-encode.

Starts are evenly spread over the frames a clip can start at, so they depend only on (num_frames, stride,
count): the same video always yields the same clips, and clip ids follow from (video_id, start, stride).
"""

from __future__ import annotations

import numpy as np

from ingest.config import IngestConfig
from ingest.records import VideoRecord, make_clip_id
from ingest.steps.probe import clip_span
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
    """Clip rows (CLIPS_SCHEMA) for one kept video. Raises videomae.video.VideoError on decode failure."""
    stride = cfg.stride_for(cfg.source(rec.source))
    t = cfg.clips.num_frames
    starts = clip_starts(rec.num_frames, clip_span(t, stride), clips_for(rec, cfg))
    wanted = sorted({i for s in starts for i in video.clip_indices(start=s, clip_len=t, stride=stride)})
    with storage.local_file(rec.uri, cfg.source(rec.source).storage_options) as local:
        frames = video.decode_frames(local, wanted, backend=cfg.decode_backend)  # (len(wanted), H, W, 3)
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
