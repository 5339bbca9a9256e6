"""Clip windows within the frames that decode, and why a video holds none: one definition for every path that slides
windows over a user's video (the API's /v1/embed and /v1/search uploads, feature extraction and its query).

A window is `clip_len` frames `frame_stride` apart; only whole windows are read, never one padded by repeating a
last frame. Windows are planned from a `FrameReader`'s length: the container's claim until a read proves it wrong,
then the frames counted (videomae/video/length.py). A video without one whole window is refused with the frames that
decode in the detail (`no_window`).
"""

from __future__ import annotations

from videomae.reasons import DECODE_ERROR, TOO_SHORT
from videomae.video.length import FrameReader


def clip_span(clip_len: int, frame_stride: int) -> int:
    """Frames one window covers, first to last."""
    return (clip_len - 1) * frame_stride + 1


def fitting_windows(num_frames: int, clip_len: int, frame_stride: int, window_stride: int) -> list[int]:
    """Start frames of the windows, every `window_stride` frames from 0, whose whole clip lies within `num_frames`
    (`videomae.transforms.sliding_windows`' starts, none padded)."""
    return list(range(0, num_frames - clip_span(clip_len, frame_stride) + 1, max(window_stride, 1)))


def no_window(reader: FrameReader, clip_len: int, frame_stride: int) -> tuple[str, str]:
    """(reason, detail) of a video without one whole window: decode_error when no frame decodes, else too_short
    saying how many frames decode (and what the container claims, when a count proved the claim wrong)."""
    n = reader.num_frames
    if n == 0:
        return DECODE_ERROR, "no frame of the video decodes"
    claim = reader.claimed.num_frames
    counted = f" (the container claims {claim})" if reader.length.counted and claim != n else ""
    return TOO_SHORT, (f"{n} frames decode{counted}; one clip of {clip_len} frames {frame_stride} apart needs "
                       f"{clip_span(clip_len, frame_stride)}")
