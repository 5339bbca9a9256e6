"""Video I/O shared by ingest, the API and the trainer.

- `probe(path_or_bytes)`: container and stream facts through ffprobe (ffmpeg-python), as a `VideoInfo`.
- `decode_frames(path, indices)`: uint8 RGB frames (T, H, W, 3) at the given frame indices; decord first,
  PyAV as the fallback where decord is missing or fails on the file.
- `frame_indices_at_times`, `clip_indices`: index helpers shared by samplers.
- `resize_short_side`, `encode_jpeg`, `decode_jpeg`: the frame transforms the clip shards store.

Frame indices count decoded frames from 0 in presentation order, as decord and the reference do.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

try:  # decord has no wheels for every platform (aarch64, macOS arm); PyAV covers those.
    import decord

    decord.bridge.set_bridge("native")
except ImportError:  # pragma: no cover - exercised only where decord is absent
    decord = None


class VideoError(RuntimeError):
    """A file that cannot be probed or decoded; `reason` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VideoInfo:
    """What ffprobe says about the first video stream."""

    duration_s: float
    fps: float
    num_frames: int
    width: int
    height: int
    codec: str
    format_name: str
    has_audio: bool


@contextmanager
def _as_path(path_or_bytes: str | os.PathLike | bytes) -> Iterator[str]:
    """A filesystem path for ffprobe/decord; bytes are spilled to a temp file (mp4 with a trailing moov
    atom cannot be probed from a pipe)."""
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        with tempfile.NamedTemporaryFile(suffix=".video") as f:
            f.write(path_or_bytes)
            f.flush()
            yield f.name
    else:
        yield os.fspath(path_or_bytes)


_NOT_VIDEO_FORMATS = {"tty", "ansi"}


def _rate(text: str | None) -> float:
    if not text or text in ("0/0", "0"):
        return 0.0
    return float(Fraction(text))


def probe(path_or_bytes: str | os.PathLike | bytes) -> VideoInfo:
    """Probe a video file (or its bytes). Raises VideoError('unreadable' | 'no_video_stream')."""
    import ffmpeg

    with _as_path(path_or_bytes) as path:
        try:
            meta = ffmpeg.probe(path)
        except ffmpeg.Error as e:
            detail = (e.stderr or b"").decode(errors="replace").strip().splitlines()
            raise VideoError("unreadable", detail[-1] if detail else "ffprobe failed") from None
    fmt = meta.get("format", {})
    if fmt.get("format_name") in _NOT_VIDEO_FORMATS:
        # ffmpeg renders text files as ANSI art (the tty demuxer); that is not a video.
        raise VideoError("unreadable", f"not a video container ({fmt.get('format_name')})")
    streams = meta.get("streams", [])
    # Cover art (attached_pic) is a one-frame "video" stream in audio files; it is not video.
    video = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    if not video:
        raise VideoError("no_video_stream", ",".join(s.get("codec_type", "?") for s in streams) or "no streams")
    s = video[0]
    fps = _rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate"))
    duration = float(s.get("duration") or fmt.get("duration") or 0.0)
    nb = s.get("nb_frames")
    # Matroska/WebM carry no per-stream frame count; estimate it from duration and rate there.
    num_frames = int(nb) if nb and str(nb).isdigit() else int(round(duration * fps))
    if duration <= 0 and fps > 0:
        duration = num_frames / fps
    return VideoInfo(
        duration_s=duration,
        fps=fps,
        num_frames=num_frames,
        width=int(s.get("width") or 0),
        height=int(s.get("height") or 0),
        codec=str(s.get("codec_name", "")),
        format_name=str(fmt.get("format_name", "")),
        has_audio=any(x.get("codec_type") == "audio" for x in streams),
    )


# ---------------------------------------------------------------------------------------------- decoding


def _decode_decord(path: str, indices: Sequence[int]) -> np.ndarray:
    vr = decord.VideoReader(path, num_threads=1)
    n = len(vr)
    if max(indices) >= n:
        raise VideoError("decode_error", f"frame {max(indices)} beyond the {n} frames decord sees")
    return vr.get_batch(list(indices)).asnumpy()  # (T, H, W, 3)


def _decode_pyav(path: str, indices: Sequence[int]) -> np.ndarray:
    import av

    wanted = sorted(set(indices))
    got: dict[int, np.ndarray] = {}
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # One forward pass: seeking by frame index is unreliable across containers, and clips are short.
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= wanted[-1]:
                break
    missing = [i for i in wanted if i not in got]
    if missing:
        detail = f"stream ended before frame {missing[0]} ({len(got)} of {len(wanted)} decoded)"
        raise VideoError("decode_error", detail)
    return np.stack([got[i] for i in indices])


def decode_frames(path: str | os.PathLike, indices: Sequence[int], backend: str = "auto") -> np.ndarray:
    """Decode the frames at `indices` (any order, repeats allowed) as uint8 (T, H, W, 3) RGB.

    backend: "auto" (decord, then PyAV on failure), "decord" or "pyav". Raises VideoError('decode_error').
    """
    path = os.fspath(path)
    if len(indices) == 0:
        raise ValueError("no frame indices")
    if min(indices) < 0:
        raise ValueError(f"negative frame index {min(indices)}")
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be auto, decord or pyav, not {backend!r}")
    if backend in ("auto", "decord") and decord is not None:
        try:
            return _decode_decord(path, indices)
        except Exception as e:  # decord raises its own DECORDError and plain RuntimeErrors
            if backend == "decord":
                raise VideoError("decode_error", f"decord: {e}") from None
            log.debug("decord failed on %s (%s); falling back to PyAV", path, e)
    try:
        return _decode_pyav(path, indices)
    except VideoError:
        raise
    except Exception as e:  # av.error.* (InvalidDataError, ...) for corrupt streams
        raise VideoError("decode_error", f"pyav: {type(e).__name__}: {e}") from None


def count_frames(path: str | os.PathLike) -> int:
    """Frames that actually decode (a full pass; slower than probe's container count, but exact)."""
    import av

    with av.open(os.fspath(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def frame_indices_at_times(times_s: Sequence[float], fps: float, num_frames: int) -> list[int]:
    """Index of the frame shown at each time, clipped to the video; times beyond the end are dropped."""
    out = []
    for t in times_s:
        i = int(np.floor(t * fps + 1e-6))
        if i < num_frames:
            out.append(i)
    return out


def clip_indices(start: int, num_frames: int, stride: int) -> list[int]:
    """Frame indices of one clip: `num_frames` frames `stride` apart from `start` (the reference's sampling)."""
    return [start + k * stride for k in range(num_frames)]


# ---------------------------------------------------------------------------------------------- transforms


def resize_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    """Resize (T, H, W, 3) or (H, W, 3) so that min(H, W) == short_side, keeping the aspect (bilinear).

    Sizes are rounded to even numbers so that downstream codecs and 2x2 patch grids see whole pixels.
    """
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    h, w = batch.shape[1:3]
    scale = short_side / min(h, w)
    nh, nw = (
        (short_side, max(2, int(round(w * scale / 2)) * 2))
        if h <= w
        else (
            max(2, int(round(h * scale / 2)) * 2),
            short_side,
        )
    )
    if (nh, nw) == (h, w):
        return frames
    out = np.stack([np.asarray(Image.fromarray(f).resize((nw, nh), Image.BILINEAR)) for f in batch])
    return out[0] if single else out


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """One (H, W, 3) uint8 frame as JPEG bytes. Fixed encoder settings keep the bytes reproducible."""
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes back to (H, W, 3) uint8 RGB."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def decode_jpegs(frames: Sequence[bytes]) -> np.ndarray:
    """A clip's JPEG frames to (T, H, W, 3) uint8."""
    return np.stack([decode_jpeg(f) for f in frames])


def is_local(uri: str | os.PathLike) -> bool:
    text = os.fspath(uri)
    return "://" not in text or text.startswith("file://")


def local_path(uri: str | os.PathLike) -> Path:
    text = os.fspath(uri)
    return Path(text[len("file://") :] if text.startswith("file://") else text)
