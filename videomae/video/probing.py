"""Probing: container and stream facts as a `VideoInfo`, read in-process with PyAV (about a millisecond, plus one
frame's decode for the rotation); ffprobe (ffmpeg-python) answers where the container has neither a frame count nor a
duration. Every open goes through `safety` (the allow-listed local file only); the stream is `streams.pick_stream`'s.

These are the container's claims. Headers lie (a file cut during download keeps the header of the whole file; an AVI
written by a crashed recorder claims frames it never wrote; Matroska has no frame count, so it is estimated from a
duration and a nominal rate that variable-rate video does not keep): `decoding.verify_length` checks the claim and
counts the frames that really decode where it is wrong.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

from videomae.reasons import NO_VIDEO_STREAM, UNREADABLE
from videomae.video.safety import OPEN_OPTIONS, VideoError, check_head, local_name, open_av, scrub
from videomae.video.streams import first_frame_rotation, normalise_rotation, pick_stream, video_streams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about the stream that is read (`streams.pick_stream`: the first default video stream,
    else the first; cover art excluded). `width` x `height` is the frame as shown, after `rotation` (counterclockwise
    degrees; 90 and 270 swap the stored size)."""

    duration_s: float
    fps: float
    num_frames: int
    width: int
    height: int
    codec: str
    format_name: str
    has_audio: bool
    stream_index: int = 0  # the container's index of the stream read
    video_streams: int = 1  # video streams in the container (cover art excluded)
    rotation: int = 0  # 0, 90, 180, 270: how far players turn the stored frames (counterclockwise)


def _rate(value: str | Fraction | None) -> float:
    if not value or value in ("0/0", "0"):
        return 0.0
    return float(Fraction(value))


def _seconds(x: float) -> float:
    return float(f"{x:.6f}")  # ffprobe prints seconds with 6 decimals: keep VideoInfo identical across backends



@contextmanager
def _as_path(path_or_bytes: str | os.PathLike | bytes) -> Iterator[str]:
    """A filesystem path for PyAV/ffprobe; bytes are spilled to a temp file (mp4 with a trailing moov atom cannot
    be probed from a pipe)."""
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        with tempfile.NamedTemporaryFile(suffix=".video") as f:
            f.write(path_or_bytes)
            f.flush()
            yield f.name
    else:
        yield local_name(path_or_bytes)


def probe(path_or_bytes: str | os.PathLike | bytes, backend: str = "auto") -> VideoInfo:
    """Probe a video file (or its bytes). Raises VideoError('empty' | 'unreadable' | 'no_video_stream').

    backend: "auto" (PyAV; ffprobe with packet counting where the container has neither a frame count nor a
    duration, e.g. raw streams and stills), "pyav" or "ffprobe" (the ffprobe fields alone, no counting).
    Matroska/WebM carry no per-stream frame count: there num_frames is round(duration * fps), as ffprobe's was.
    """
    if backend not in ("auto", "pyav", "ffprobe"):
        raise ValueError(f"backend must be auto, pyav or ffprobe, not {backend!r}")
    with _as_path(path_or_bytes) as path:
        check_head(path)
        if backend == "ffprobe":
            return _probe_ffprobe(path, count_packets=False)
        try:
            info = _probe_pyav(path)
        except VideoError:
            raise
        except Exception as e:  # PyAV could not answer (e.g. a stream without codec parameters): ask ffprobe
            detail = scrub(f"{type(e).__name__}: {e}", path)
            if backend == "pyav":
                raise VideoError(UNREADABLE, f"pyav: {detail}") from None
            log.debug("PyAV probe failed (%s); asking ffprobe", detail)
            return _probe_ffprobe(path, count_packets=False)
        if backend == "pyav" or info.num_frames > 0:
            return info
        return _probe_ffprobe(path, count_packets=True)


def _no_video(types: list[str], attached: int) -> VideoError:
    """The error for a container without a video stream, saying what it holds instead."""
    others = ",".join(t for t in types if t != "video") or "nothing else"
    if attached:
        return VideoError(NO_VIDEO_STREAM, f"only an attached picture (cover art) besides {others}; no video stream")
    return VideoError(NO_VIDEO_STREAM, f"{others} only" if types else "no streams")


def _probe_pyav(path: str) -> VideoInfo:
    with open_av(path) as c:
        streams = list(c.streams)
        s = pick_stream(c)
        if s is None:
            raise _no_video([x.type for x in streams], len(c.streams.video))
        fps = _rate(s.average_rate) or _rate(s.base_rate)
        if s.duration is not None and s.time_base:
            duration = _seconds(float(s.duration * s.time_base))
        else:
            duration = _seconds(c.duration / 1e6) if c.duration else 0.0
        cc = s.codec_context
        if cc is None:  # no decoder for this codec id: PyAV exposes no codec parameters
            raise LookupError("no codec context")
        width, height, codec = cc.width, cc.height, cc.codec.canonical_name
        n_video, frames, index = len(video_streams(c)), s.frames, s.index
        rotation = first_frame_rotation(c, s)
        has_audio = any(x.type == "audio" for x in streams)
        return _info(duration, fps, frames, width, height, codec, c.format.name, has_audio, stream_index=index,
                     video_streams=n_video, rotation=rotation)  # fmt: skip


def _probe_ffprobe(path: str, count_packets: bool) -> VideoInfo:
    import ffmpeg

    extra = {"count_packets": None} if count_packets else {}
    try:
        meta = ffmpeg.probe(path, **OPEN_OPTIONS, **extra)
    except ffmpeg.Error as e:
        text = (e.stderr or b"").decode(errors="replace")
        if "not on whitelist" in text:
            raise VideoError(UNREADABLE, "not an allowed video container") from None
        lines = text.strip().splitlines()
        raise VideoError(UNREADABLE, scrub(lines[-1], path) if lines else "ffprobe failed") from None
    fmt, streams = meta.get("format", {}), meta.get("streams", [])
    video = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    if not video:
        covers = sum(1 for s in streams if s.get("codec_type") == "video")
        raise _no_video([s.get("codec_type", "?") for s in streams], covers)
    s = next((x for x in video if x.get("disposition", {}).get("default")), video[0])  # as streams.pick_stream
    nb = next((str(s[k]) for k in ("nb_frames", "nb_read_packets") if str(s.get(k, "")).isdigit()), "0")
    rotation = next((d["rotation"] for d in s.get("side_data_list", []) if "rotation" in d), 0)
    return _info(float(s.get("duration") or fmt.get("duration") or 0.0),
                 _rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate")), int(nb), int(s.get("width") or 0),
                 int(s.get("height") or 0), str(s.get("codec_name", "")), str(fmt.get("format_name", "")),
                 any(x.get("codec_type") == "audio" for x in streams), stream_index=int(s.get("index", 0)),
                 video_streams=len(video), rotation=normalise_rotation(float(rotation)))  # fmt: skip


def _info(duration: float, fps: float, frames: int, width: int, height: int, codec: str, format_name: str,
          has_audio: bool, stream_index: int = 0, video_streams: int = 1, rotation: int = 0) -> VideoInfo:  # fmt: skip
    # No per-stream frame count (Matroska, MPEG-PS/TS, Ogg): estimate it from duration and rate, as before.
    num_frames = frames if frames > 0 else int(round(duration * fps))
    if duration <= 0 and fps > 0:
        duration = num_frames / fps
    if rotation in (90, 270):  # the size as shown
        width, height = height, width
    return VideoInfo(duration_s=duration, fps=fps, num_frames=num_frames, width=int(width or 0),
                     height=int(height or 0), codec=codec, format_name=format_name, has_audio=has_audio,
                     stream_index=stream_index, video_streams=video_streams, rotation=rotation)  # fmt: skip
