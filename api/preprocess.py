"""Upload -> checked video facts -> model-ready clips, through the library's one preprocessing path.

Recognising, probing and decoding are `videomae.video` (`sniff_file`, then `probe` and `decode_frames`, which read
only the local file and keep paths out of their messages); frame sampling is `videomae.transforms.sliding_windows`
and `videomae.video.clip_indices` (clamped to the last frame like the reference's loaders); pixels go through
`videomae.transforms.eval_clip` (short side -> img_size, center crop, ImageNet normalisation), the transform the
trainer's evaluation uses, so a served feature is the feature the library computes for the same frames. Nothing
here re-implements a transform; this module only adds the service's limits and turns library errors into 4xx.

These functions block (probing, decoding): the routes run them in the decode thread pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from api.errors import ApiError
from api.settings import Settings
from videomae.transforms import eval_clip
from videomae.video import VideoError, VideoInfo, clip_indices, decode_frames, probe, sniff_file

REASON_TAGS = {
    "empty": "empty_video",
    "unreadable": "unreadable_video",
    "no_video_stream": "no_video_stream",
    "decode_error": "decode_error",
}


def _as_api_error(e: VideoError) -> ApiError:
    detail = e.detail or e.reason  # the library keeps file paths out of details
    tag = REASON_TAGS.get(e.reason, "bad_video")
    hint = {"decode_error": " (truncated or corrupt?)", "no_video_stream": " (audio only?)"}.get(e.reason, "")
    return ApiError(422, tag, f"{tag.replace('_', ' ')}{hint}: {detail}")


def probe_upload(path: Path, settings: Settings) -> VideoInfo:
    """Recognise, probe and bound the upload. Raises ApiError (415/422)."""
    if sniff_file(path) is None:
        raise ApiError(415, "unsupported_media_type",
                       "not a recognised video container (mp4/mov, mkv/webm, avi, flv, ogg, mpeg-ts/ps, gif)")
    try:
        info = probe(path)
    except VideoError as e:
        raise _as_api_error(e) from None
    if info.num_frames <= 0:
        raise ApiError(422, "empty_video", "the video stream has no frames")
    if info.width <= 0 or info.height <= 0:
        raise ApiError(422, "bad_video", "the video stream has no frame size")
    check_size(info.width, info.height, settings)
    if info.duration_s > settings.max_duration_s:
        raise ApiError(422, "video_too_long",
                       f"{info.duration_s:.1f} s is longer than the {settings.max_duration_s:g} s allowed")
    if info.num_frames > settings.max_frames:
        raise ApiError(422, "too_many_frames", f"{info.num_frames} frames; at most {settings.max_frames} allowed")
    return info


def check_size(width: int, height: int, settings: Settings) -> None:
    if width > settings.max_width or height > settings.max_height or width * height > settings.max_pixels:
        raise ApiError(422, "resolution_too_large",
                       f"{width}x{height} exceeds the limit ({settings.max_width}x{settings.max_height}, "
                       f"{settings.max_pixels} pixels)")


def window_indices(info: VideoInfo, clip_len: int, frame_stride: int, start: int) -> list[int]:
    return clip_indices(clip_len=clip_len, stride=frame_stride, start=start, total_frames=info.num_frames)


def load_clip(path: Path, indices: Sequence[int], img_size: int, settings: Settings) -> torch.Tensor:
    """Decode the frames at `indices` and apply the evaluation transform: (3, T, S, S), normalised."""
    try:
        frames = decode_frames(path, [int(i) for i in indices])  # (T, H, W, 3) uint8
    except VideoError as e:
        raise _as_api_error(e) from None
    # The container's header may lie about the size; the decoded frames are what costs memory.
    check_size(frames.shape[2], frames.shape[1], settings)
    return eval_clip(frames, img_size)
