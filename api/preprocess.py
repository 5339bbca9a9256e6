"""Upload -> checked video facts -> model-ready clips, through the library's one preprocessing path.

Recognising, probing and decoding are `videomae.video` (`sniff_file`, then `probe` and a `FrameReader`, which read
only the local file and keep paths out of their messages); windows are `videomae.video.windows` (whole windows
within the frames that decode, as feature extraction's) and `videomae.video.clip_indices`; pixels go through
`videomae.transforms.eval_clip` (short side -> img_size, center crop, ImageNet normalisation), the transform the
trainer's evaluation uses, so a served feature is the feature the library computes for the same frames. Nothing
here re-implements a transform; this module only adds the service's limits and turns library errors into 4xx.

The container's frame count is a claim: windows are planned from it (the fast path), and a read that finds frames
missing makes the `FrameReader` count what decodes once, after which only windows within the real frames are served.
Only clips that exist are served: an upload without one full clip is a 422 `video_too_short` saying how many frames
decode (no clip is padded by repeating its last frame).

These functions block (probing, decoding): the routes run them in the decode thread pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from api.errors import ApiError
from api.settings import Settings
from videomae import reasons
from videomae.transforms import eval_clip
from videomae.video import FrameReader, VideoError, VideoInfo, clip_indices, probe, sniff_file, verify_length
from videomae.video.windows import clip_span, fitting_windows, no_window


def refusal(reason: str, detail: str, message: str | None = None) -> ApiError:
    """The answer to an upload refused for one of the library's reject reasons (`videomae.reasons`): its status, tag
    and message (the reason's template around `detail`, unless a `message` of its own is given)."""
    r = reasons.reason(reason)
    return ApiError(r.status or 422, reasons.api_tag(reason), message or r.message(detail))


def _as_api_error(e: VideoError) -> ApiError:
    return refusal(e.reason, e.detail or e.reason)  # the library keeps file paths out of details


def probe_upload(path: Path, settings: Settings) -> tuple[VideoInfo, FrameReader]:
    """Recognise, probe and bound the upload: its claims, and a reader of its frames. A claim beyond the duration or
    frame limit is checked before it refuses the upload (its last frame decoded, else the frames counted, at most
    one past the limit). Raises ApiError (415/422)."""
    if sniff_file(path) is None:
        raise ApiError(415, "unsupported_media_type",
                       "not a recognised video container (mp4/mov, mkv/webm, avi, flv, ogg, mpeg-ts/ps, gif)")
    try:
        info = probe(path)
    except VideoError as e:
        raise _as_api_error(e) from None
    if info.num_frames <= 0:
        raise refusal(reasons.EMPTY, "", "the video stream has no frames")
    if info.width <= 0 or info.height <= 0:
        raise ApiError(422, "bad_video", "the video stream has no frame size")
    check_size(info.width, info.height, settings)
    reader = FrameReader.from_claim(path, info)
    if info.duration_s > settings.max_duration_s or info.num_frames > settings.max_frames:
        try:
            reader.length = verify_length(path, info, limit=settings.max_frames)
        except VideoError as e:
            raise _as_api_error(e) from None
    length = reader.length
    if length.duration_s > settings.max_duration_s:
        raise ApiError(422, "video_too_long",
                       f"{length.duration_s:.1f} s is longer than the {settings.max_duration_s:g} s allowed")
    if length.num_frames > settings.max_frames:
        more = "more than " if length.counted else ""
        raise ApiError(422, "too_many_frames", f"{more}{length.num_frames - bool(more)} frames; at most "
                                               f"{settings.max_frames} allowed")
    return info, reader


def check_size(width: int, height: int, settings: Settings) -> None:
    if width > settings.max_width or height > settings.max_height or width * height > settings.max_pixels:
        raise ApiError(422, "resolution_too_large",
                       f"{width}x{height} exceeds the limit ({settings.max_width}x{settings.max_height}, "
                       f"{settings.max_pixels} pixels)")


def too_short(reader: FrameReader, clip_len: int, frame_stride: int) -> ApiError:
    """The 422 for an upload without one full clip (or, when nothing decodes, decode_error), as feature extraction
    rejects such a video (`videomae.video.windows.no_window`)."""
    return refusal(*no_window(reader, clip_len, frame_stride))


def plan_windows(reader: FrameReader, info: VideoInfo, clip_len: int, frame_stride: int, window_stride: int,
                 max_clips: int) -> list[int]:  # fmt: skip
    """Window starts within the frames. A claim that refuses the upload is checked first: too short for one clip, by
    counting (headers understate too); too many clips, by decoding the claimed last frame (`verify_length`), counting
    only if that fails. Raises ApiError 422 (video_too_short, too_many_clips)."""
    starts = fitting_windows(reader.num_frames, clip_len, frame_stride, window_stride)
    try:
        if not starts:
            reader.recount()
        elif len(starts) > max_clips and not reader.length.counted:
            reader.length = verify_length(reader.path, info)
    except VideoError as e:
        raise _as_api_error(e) from None
    starts = fitting_windows(reader.num_frames, clip_len, frame_stride, window_stride)
    if not starts:
        raise too_short(reader, clip_len, frame_stride)
    if len(starts) > max_clips:
        raise ApiError(422, "too_many_clips", f"{len(starts)} clips for {reader.num_frames} frames; at most "
                                              f"{max_clips}: raise window_stride")
    return starts


def load_clip(reader: FrameReader, indices: Sequence[int], img_size: int, settings: Settings) -> torch.Tensor | None:
    """Decode the frames at `indices` and apply the evaluation transform: (3, T, S, S), normalised; None when the
    frames do not exist (the reader has then counted the video: plan again within `reader.num_frames`)."""
    try:
        frames = reader.read([int(i) for i in indices])  # (T, H, W, 3) uint8, upright
    except VideoError as e:
        raise _as_api_error(e) from None
    if frames is None:
        return None
    # The container's header may lie about the size; the decoded frames are what costs memory.
    check_size(frames.shape[2], frames.shape[1], settings)
    return eval_clip(frames, img_size)


def clip_at(reader: FrameReader, start: int, clip_len: int, frame_stride: int, img_size: int, settings: Settings
            ) -> tuple[list[int], torch.Tensor]:  # fmt: skip
    """The one clip of `clip_len` frames `frame_stride` apart from `start` (/v1/reconstruct): its frame indices and
    (3, T, S, S) tensor. Raises ApiError 422: video_too_short, or invalid_request naming `start` when the clip from
    there runs past the frames that decode."""
    span = clip_span(clip_len, frame_stride)
    while True:  # twice at most: a read that finds frames missing counts them, then the clip is checked again
        if reader.num_frames < span and not reader.length.counted:
            try:
                reader.recount()  # a claim too short for one clip is counted (headers understate too)
            except VideoError as e:
                raise _as_api_error(e) from None
        n = reader.num_frames
        if n < span:
            raise too_short(reader, clip_len, frame_stride)
        if start + span > n:
            raise ApiError(422, "invalid_request", f"start ({start}): the clip from there needs frames up to "
                                                   f"{start + span - 1}, the video has {n}; start at most {n - span}")
        indices = clip_indices(clip_len=clip_len, stride=frame_stride, start=start)
        clip = load_clip(reader, indices, img_size, settings)
        if clip is not None:
            return indices, clip
