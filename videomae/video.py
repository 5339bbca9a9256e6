"""Video I/O shared by ingest, the API and the trainer.

- `sniff_container(head)` / `sniff_file(path)`: the container family a file's first bytes belong to (content, not
  the file name), for callers that accept only well-known self-contained containers (the API).
- `probe(path_or_bytes)`: container and stream facts as a `VideoInfo`, read in-process with PyAV (about a
  millisecond); ffprobe (ffmpeg-python) answers where the container has neither a frame count nor a duration.
- `decode_frames(path, indices)`: uint8 RGB frames (T, H, W, 3) at the given frame indices; decord first,
  PyAV as the fallback where decord is missing, fails, or may not read the file (see below).
- `count_frames(path)`: the frames that actually decode (a full pass).
- `frame_indices_at_times`, `clip_indices`: index helpers shared by samplers (`clip_indices` is the one
  definition; `videomae.transforms` re-exports it).
- `resize_short_side`, `encode_jpeg`, `decode_jpeg`: the frame transforms the clip shards store.

Only the local file is read. libavformat also opens formats that point at *other* files or URLs (HLS
playlists, ffconcat lists, SDP descriptions, DASH/IMF manifests, image2 file-name patterns); an untrusted
upload or a crawled file must not make the server read its own paths or open connections. So every open
through PyAV or ffprobe passes `protocol_whitelist=file` and a demuxer allow-list (`ALLOWED_DEMUXERS`), and
decord, which cannot be restricted, is only handed files whose first bytes and PyAV's demuxer agree on a
recognised binary container. Paths are made absolute first, so a name like `concat:a|b` or `-i` is a file name.

Errors are `VideoError`s with a short `reason` (the ingest drop reasons): `empty` (0 bytes), `unreadable`
(cannot be opened, or a refused container), `no_video_stream`, `decode_error`. Details never contain the
file's path (they reach API clients and shared reject tables).

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
    """A file that cannot be probed or decoded. `reason` is a short machine-readable tag (empty, unreadable,
    no_video_stream, decode_error: the ingest drop reasons); `detail` is for people and never holds the path."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VideoInfo:
    """Facts about the first video stream (cover art excluded) and its container."""

    duration_s: float
    fps: float
    num_frames: int
    width: int
    height: int
    codec: str
    format_name: str
    has_audio: bool


# ---------------------------------------------------------------------------------------------- what is read

# Demuxers that may read a file: self-contained containers, raw elementary streams and single-image pipes (ingest
# probes stills and drops them as too short). Everything else is refused, in particular hls, dash, concat, sdp,
# rtp/rtsp, imf and image2 (file-name patterns), which open other files or URLs named inside the file, and
# tty/ansi, which render any text file as "video". av_match_list matches any name of a multi-name demuxer
# ("mov" covers "mov,mp4,m4a,3gp,3g2,mj2").
ALLOWED_DEMUXERS = (
    "mov", "matroska", "avi", "flv", "ogg", "mpeg", "mpegts", "mpegvideo", "asf", "gif", "ivf", "nut",
    "h264", "hevc", "m4v", "obu", "mjpeg", "yuv4mpegpipe", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe",
)  # fmt: skip
_OPEN_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": ",".join(ALLOWED_DEMUXERS)}

SNIFF_BYTES = 512  # what sniff_container needs to see (an MPEG-TS file is recognised by its second packet)
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid"}
# sniff_container's families -> the PyAV demuxer that must agree before decord gets the file.
_SNIFFED_DEMUXER = {"mp4": "mov", "matroska": "matroska", "avi": "avi", "flv": "flv", "ogg": "ogg",
                    "mpeg-ps": "mpeg", "mpegts": "mpegts", "gif": "gif"}  # fmt: skip
# Text formats that name other files or URLs: refused before any demuxer sees them, with a clear detail.
_REFERENCING = ((b"#EXTM3U", "an HLS playlist"), (b"ffconcat", "an ffconcat list"), (b"v=0", "an SDP description"),
                (b"<?xml", "an XML manifest (DASH/IMF?)"), (b"<MPD", "a DASH manifest"))  # fmt: skip


def sniff_container(head: bytes) -> str | None:
    """The container family the first bytes of a file start like (pass at least SNIFF_BYTES), or None.

    Only self-contained binary video containers are named: "mp4" (ISO-BMFF: mp4, mov, m4v, 3gp), "matroska"
    (mkv, webm), "avi", "flv", "ogg", "mpeg-ps", "mpegts", "gif". Text (playlists, lists, manifests) and
    anything else is None.
    """
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith(b"FLV\x01"):
        return "flv"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x00\x00\x01\xba"):
        return "mpeg-ps"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head[:1] == b"\x47" and len(head) > 188 and head[188] == 0x47:
        return "mpegts"  # a sync byte at the start of the first two 188-byte packets
    return None


def sniff_file(path: str | os.PathLike) -> str | None:
    """`sniff_container` on the file's first bytes."""
    with open(path, "rb") as f:
        return sniff_container(f.read(SNIFF_BYTES))


def _local(path: str | os.PathLike) -> str:
    # Absolute, so that libavformat and ffprobe see a file name, never a protocol ("concat:", "http:") or option.
    return os.path.abspath(os.fspath(path))


def _scrub(text: str, path: str) -> str:
    """Decoder messages quote the file name; keep server paths out of details."""
    for p in sorted({path, os.path.realpath(path)}, key=len, reverse=True):
        text = text.replace(f"{p}: ", "").replace(p, "<file>")
    return text


def _check_head(path: str) -> bytes:
    """The first bytes, after refusing empty files and text formats that name other files."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as e:
        raise VideoError("unreadable", e.strerror or type(e).__name__) from None
    if not head:
        raise VideoError("empty", "0 bytes")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for magic, what in _REFERENCING:
        if text.startswith(magic):
            raise VideoError("unreadable", f"refused: {what} refers to other files or URLs; only self-contained "
                                           "video files are read")  # fmt: skip
    return head


@contextmanager
def _open_av(path: str):
    """PyAV container restricted to the local file and the allowed demuxers; open failures are VideoErrors."""
    import av

    try:
        # metadata_errors: a tag that is not UTF-8 must not make a readable file unreadable (or crash the caller).
        container = av.open(path, options=_OPEN_OPTIONS, metadata_errors="replace")
    except av.error.ArgumentError:  # EINVAL: the probed demuxer is not on the allow-list
        raise VideoError("unreadable", "not an allowed video container") from None
    except Exception as e:  # av.error.* (InvalidDataError, ...), OSError: whatever the untrusted bytes cause
        raise VideoError("unreadable", _scrub(f"{type(e).__name__}: {_av_message(e)}", path)) from None
    with container:
        yield container


def _rate(value: str | Fraction | None) -> float:
    if not value or value in ("0/0", "0"):
        return 0.0
    return float(Fraction(value))


def _seconds(x: float) -> float:
    return float(f"{x:.6f}")  # ffprobe prints seconds with 6 decimals: keep VideoInfo identical across backends


# ---------------------------------------------------------------------------------------------- probing


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
        yield _local(path_or_bytes)


def probe(path_or_bytes: str | os.PathLike | bytes, backend: str = "auto") -> VideoInfo:
    """Probe a video file (or its bytes). Raises VideoError('empty' | 'unreadable' | 'no_video_stream').

    backend: "auto" (PyAV; ffprobe with packet counting where the container has neither a frame count nor a
    duration, e.g. raw streams and stills), "pyav" or "ffprobe" (the ffprobe fields alone, no counting).
    Matroska/WebM carry no per-stream frame count: there num_frames is round(duration * fps), as ffprobe's was.
    """
    if backend not in ("auto", "pyav", "ffprobe"):
        raise ValueError(f"backend must be auto, pyav or ffprobe, not {backend!r}")
    with _as_path(path_or_bytes) as path:
        _check_head(path)
        if backend == "ffprobe":
            return _probe_ffprobe(path, count_packets=False)
        try:
            info = _probe_pyav(path)
        except VideoError:
            raise
        except Exception as e:  # PyAV could not answer (e.g. a stream without codec parameters): ask ffprobe
            detail = _scrub(f"{type(e).__name__}: {e}", path)
            if backend == "pyav":
                raise VideoError("unreadable", f"pyav: {detail}") from None
            log.debug("PyAV probe failed (%s); asking ffprobe", detail)
            return _probe_ffprobe(path, count_packets=False)
        if backend == "pyav" or info.num_frames > 0:
            return info
        return _probe_ffprobe(path, count_packets=True)


def _probe_pyav(path: str) -> VideoInfo:
    import av

    with _open_av(path) as c:
        streams = list(c.streams)
        # Cover art (attached_pic) is a one-frame "video" stream in audio files; it is not video.
        video = [s for s in streams if s.type == "video" and not s.disposition & av.stream.Disposition.attached_pic]
        if not video:
            raise VideoError("no_video_stream", ",".join(s.type for s in streams) or "no streams")
        s = video[0]
        fps = _rate(s.average_rate) or _rate(s.base_rate)
        if s.duration is not None and s.time_base:
            duration = _seconds(float(s.duration * s.time_base))
        else:
            duration = _seconds(c.duration / 1e6) if c.duration else 0.0
        cc = s.codec_context
        if cc is None:  # no decoder for this codec id: PyAV exposes no codec parameters
            raise LookupError("no codec context")
        return _info(duration, fps, s.frames, cc.width, cc.height, cc.codec.canonical_name, c.format.name,
                     any(x.type == "audio" for x in streams))  # fmt: skip


def _probe_ffprobe(path: str, count_packets: bool) -> VideoInfo:
    import ffmpeg

    extra = {"count_packets": None} if count_packets else {}
    try:
        meta = ffmpeg.probe(path, **_OPEN_OPTIONS, **extra)
    except ffmpeg.Error as e:
        text = (e.stderr or b"").decode(errors="replace")
        if "not on whitelist" in text:
            raise VideoError("unreadable", "not an allowed video container") from None
        lines = text.strip().splitlines()
        raise VideoError("unreadable", _scrub(lines[-1], path) if lines else "ffprobe failed") from None
    fmt, streams = meta.get("format", {}), meta.get("streams", [])
    video = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    if not video:
        raise VideoError("no_video_stream", ",".join(s.get("codec_type", "?") for s in streams) or "no streams")
    s = video[0]
    nb = next((str(s[k]) for k in ("nb_frames", "nb_read_packets") if str(s.get(k, "")).isdigit()), "0")
    return _info(float(s.get("duration") or fmt.get("duration") or 0.0),
                 _rate(s.get("avg_frame_rate")) or _rate(s.get("r_frame_rate")), int(nb), int(s.get("width") or 0),
                 int(s.get("height") or 0), str(s.get("codec_name", "")), str(fmt.get("format_name", "")),
                 any(x.get("codec_type") == "audio" for x in streams))  # fmt: skip


def _info(duration: float, fps: float, frames: int, width: int, height: int, codec: str, format_name: str,
          has_audio: bool) -> VideoInfo:  # fmt: skip
    # No per-stream frame count (Matroska, MPEG-PS/TS, Ogg): estimate it from duration and rate, as before.
    num_frames = frames if frames > 0 else int(round(duration * fps))
    if duration <= 0 and fps > 0:
        duration = num_frames / fps
    return VideoInfo(duration_s=duration, fps=fps, num_frames=num_frames, width=int(width or 0),
                     height=int(height or 0), codec=codec, format_name=format_name, has_audio=has_audio)  # fmt: skip


# ---------------------------------------------------------------------------------------------- decoding


def _decord_may_read(path: str, head: bytes) -> tuple[bool, str]:
    """Whether decord (unrestricted libavformat) may open the file: the first bytes and PyAV's restricted demuxer
    must agree on a recognised binary container. Raises VideoError('unreadable') for refused files."""
    kind = sniff_container(head)
    with _open_av(path) as c:
        fmt = c.format.name
    wanted = _SNIFFED_DEMUXER.get(kind or "")
    return wanted is not None and wanted in fmt.split(","), fmt


def _decode_decord(path: str, indices: Sequence[int]) -> np.ndarray:
    vr = decord.VideoReader(path, num_threads=1)
    n = len(vr)
    if max(indices) >= n:
        raise VideoError("decode_error", f"frame {max(indices)} beyond the {n} frames decord sees")
    return vr.get_batch(list(indices)).asnumpy()  # (T, H, W, 3)


def _decode_pyav(path: str, indices: Sequence[int]) -> np.ndarray:
    wanted = sorted(set(indices))
    got: dict[int, np.ndarray] = {}
    with _open_av(path) as container:
        if not container.streams.video:
            raise VideoError("no_video_stream", "no video stream to decode")
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

    backend: "auto" (decord, then PyAV on failure), "decord" or "pyav". Raises VideoError: 'empty' or
    'unreadable' when the file cannot be opened or its container is refused, 'decode_error' when frames fail.
    """
    path = _local(path)
    if len(indices) == 0:
        raise ValueError("no frame indices")
    if min(indices) < 0:
        raise ValueError(f"negative frame index {min(indices)}")
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be auto, decord or pyav, not {backend!r}")
    head = _check_head(path)
    if backend in ("auto", "decord") and decord is not None:
        allowed, fmt = _decord_may_read(path, head)
        if not allowed and backend == "decord":
            raise VideoError("unreadable", f"decord is only used on recognised binary containers, not {fmt}")
        if allowed:
            try:
                return _decode_decord(path, indices)
            except Exception as e:  # decord raises its own DECORDError and plain RuntimeErrors
                if backend == "decord":
                    raise VideoError("decode_error", _scrub(f"decord: {e}", path)) from None
                log.debug("decord failed (%s); falling back to PyAV", _scrub(str(e), path))
    try:
        return _decode_pyav(path, indices)
    except VideoError:
        raise
    except Exception as e:  # av.error.* (InvalidDataError, ...) for corrupt streams
        raise VideoError("decode_error", _scrub(f"pyav: {type(e).__name__}: {_av_message(e)}", path)) from None


def _av_message(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)  # av errors: strerror has no file name


def count_frames(path: str | os.PathLike) -> int:
    """Frames that actually decode (a full pass; slower than probe's container count, but exact).

    Raises VideoError: 'empty' / 'unreadable' / 'no_video_stream' as probe, 'decode_error' for a corrupt stream.
    """
    path = _local(path)
    _check_head(path)
    with _open_av(path) as container:
        if not container.streams.video:
            raise VideoError("no_video_stream", "no video stream to decode")
        try:
            return sum(1 for _ in container.decode(video=0))
        except Exception as e:  # av.error.InvalidDataError and kin, mid-stream
            raise VideoError("decode_error", _scrub(f"{type(e).__name__}: {_av_message(e)}", path)) from None


def frame_indices_at_times(times_s: Sequence[float], fps: float, num_frames: int) -> list[int]:
    """Index of the frame shown at each time, clipped to the video; times beyond the end are dropped."""
    out = []
    for t in times_s:
        i = int(np.floor(t * fps + 1e-6))
        if i < num_frames:
            out.append(i)
    return out


def clip_indices(*, clip_len: int, stride: int = 1, start: int = 0, total_frames: int | None = None) -> list[int]:
    """Frame indices of one clip: `clip_len` frames `stride` apart from `start` (the reference's sampling).

    Clamping: with `total_frames`, indices past the last frame (total_frames - 1) become the last frame, so a
    short video repeats its last frame as the reference's loaders do (the API's windows). Without it nothing is
    clamped: the caller has made sure the clip fits (ingest starts clips only where they fit).
    Keyword-only, because the two helpers this replaces took the same numbers in different orders.
    """
    if clip_len < 1 or stride < 1 or start < 0:
        raise ValueError(f"need clip_len >= 1, stride >= 1, start >= 0; got {clip_len}, {stride}, {start}")
    idx = [start + k * stride for k in range(clip_len)]
    if total_frames is None:
        return idx
    if total_frames <= 0:
        raise ValueError("the video has no frames")
    return [min(i, total_frames - 1) for i in idx]


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
