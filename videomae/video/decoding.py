"""Decoding: uint8 RGB frames (T, H, W, 3), upright as a player shows them (`streams.upright`), from the stream
`streams.pick_stream` chooses.

- `decode_frames(path, indices)`: frames by index; decord first (it seeks), PyAV as the fallback where decord is
  missing, fails, or may not read the file (`safety.decord_may_read`).
- `decode_frames_at_times(path, times)`: the frame a player shows at each time (presentation timestamps, so variable
  frame rate and frames lost to damage move nothing else).
- `scan(path)` / `count_frames(path)`: one pass over every frame: how many decode, and the time they span.

Frame indices count *decoded* frames from 0 in presentation order, as decord and the reference do. The PyAV path is
the robust one and defines what "decodes" means: a packet the decoder refuses (a corrupt stretch) is skipped and the
frames after it still count; a stream that ends early (a file cut short) ends the frames. On an undamaged file decord
and PyAV number frames alike; on a damaged one decord may number the frames its index lists instead, so a reader that
has counted frames with `scan` keeps to PyAV (`length.FrameReader` does).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from videomae.reasons import DECODE_ERROR, NO_VIDEO_STREAM, UNREADABLE
from videomae.video.safety import VideoError, av_message, check_head, decord_may_read, local_name, open_av, scrub
from videomae.video.streams import first_frame_rotation, normalise_rotation, pick_stream, upright, video_streams

log = logging.getLogger(__name__)

try:  # decord has no wheels for every platform (aarch64, macOS arm); PyAV covers those.
    import decord

    decord.bridge.set_bridge("native")
except ImportError:  # pragma: no cover - exercised only where decord is absent
    decord = None


# ---------------------------------------------------------------------------------------------- the PyAV pass
@dataclass
class Pass:
    """What one forward PyAV pass saw: frames that decoded (`count`), packets the decoder refused (`errors`), whether
    the demuxer stopped on an error (a cut file), and the presentation times (s) of the first and last frame."""

    count: int = 0
    errors: int = 0
    cut: bool = False
    first_s: float | None = None
    last_s: float | None = None
    last_duration_s: float = 0.0
    nominal_fps: float = 0.0

    @property
    def duration_s(self) -> float:
        """Time the decoded frames span, the last one shown for its own duration (or one nominal frame)."""
        if self.count == 0 or self.first_s is None or self.last_s is None:
            return self.count / self.nominal_fps if self.nominal_fps else 0.0
        step = self.last_duration_s or (1.0 / self.nominal_fps if self.nominal_fps else 0.0)
        return max(0.0, self.last_s - self.first_s) + step


def _frames(container, stream, seen: Pass) -> Iterator:
    """Every frame that decodes, in presentation order; refused packets are skipped, a demux error ends the stream."""
    # Slice threads only: with frame threads, a refused packet at a cut end also loses the frames still in flight
    # (measured: 33 instead of the 35 that ffmpeg and ffprobe count on a cut mp4), so counts would depend on threading.
    stream.thread_type = "SLICE"
    rate = stream.average_rate or stream.base_rate
    seen.nominal_fps = float(rate) if rate else 0.0
    tb = stream.time_base

    def note(frame):
        t = float(frame.pts * tb) if frame.pts is not None and tb else None
        if t is not None:
            seen.first_s = t if seen.first_s is None else seen.first_s
            seen.last_s = t
        seen.last_duration_s = float(frame.duration * tb) if getattr(frame, "duration", 0) and tb else 0.0
        seen.count += 1
        return frame

    try:
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except Exception:  # av.error.InvalidDataError and kin: a corrupt packet; later keyframes still decode
                seen.errors += 1
                continue
            for frame in decoded:
                yield note(frame)
    except Exception:  # the demuxer gave up (a file cut short, a mangled container): what decoded so far counts
        seen.cut = True
    try:  # drain the decoder: after a demux error its delayed frames were never flushed
        for frame in stream.decode(None):
            yield note(frame)
    except Exception:  # already drained at a clean end of stream (EOF), or the decoder refuses to flush
        pass


def _open_stream(container):
    s = pick_stream(container)
    if s is None:
        raise VideoError(NO_VIDEO_STREAM, "no video stream to decode")
    return s


def _rgb(frame) -> np.ndarray:
    return upright(frame.to_ndarray(format="rgb24"), normalise_rotation(frame.rotation))


# ---------------------------------------------------------------------------------------------- decord
def decord_plan(path: str, head: bytes | None = None, rotation: int | None = None) -> tuple[bool, str]:
    """(decord may read the file, the demuxer's name). decord may read recognised binary containers with one video
    stream (`safety.decord_may_read`) whose frames need no turning: decord 0.6 fails on rotated MP4s (it sizes its
    output for the turned frame but copies the stored one). Opens the file with PyAV (restricted); decodes its first
    frame only when `rotation` is not given."""
    head = check_head(path) if head is None else head
    with open_av(path) as c:
        s = _open_stream(c)
        allowed = decord_may_read(head, c.format.name, len(video_streams(c)))
        if allowed and rotation is None:
            rotation = first_frame_rotation(c, s)
        return allowed and not rotation, c.format.name


def _try_decord(path: str, backend: str, call):
    """`call(reader)` on decord's VideoReader. Where decord fails: None with backend 'auto' (PyAV reads instead);
    with 'decord' a VideoError, 'unreadable' if decord cannot open the file (GIF, AV1, Matroska without cues here),
    'decode_error' if frames fail (a corrupt packet, an index beyond its frames)."""
    try:
        vr = decord.VideoReader(path, num_threads=1)
    except Exception as e:  # DECORDError, RuntimeError
        err = VideoError(UNREADABLE, scrub(f"decord cannot open it: {e}", path))
    else:
        try:
            return call(vr)
        except VideoError as e:
            err = e
        except Exception as e:  # decord raises its own DECORDError and plain RuntimeErrors
            err = VideoError(DECODE_ERROR, scrub(f"decord: {e}", path))
    if backend == "decord":
        raise err
    log.debug("decord failed (%s); falling back to PyAV", err)
    return None


def _pick_decord(path: str, head: bytes, backend: str, rotation: int | None) -> bool:
    if backend == "pyav" or decord is None:
        return False
    allowed, fmt = decord_plan(path, head, rotation)
    if not allowed and backend == "decord":
        raise VideoError(UNREADABLE, f"decord only reads recognised binary containers with one unrotated video "
                                       f"stream, not this {fmt} file")  # fmt: skip
    return allowed


# ---------------------------------------------------------------------------------------------- by index
def _decode_decord(vr, indices: Sequence[int]) -> np.ndarray:
    n = len(vr)
    if max(indices) >= n:
        raise VideoError(DECODE_ERROR, f"frame {max(indices)} beyond the {n} frames decord sees")
    return vr.get_batch(list(indices)).asnumpy()  # (T, H, W, 3)


def _decode_pyav(path: str, indices: Sequence[int]) -> np.ndarray:
    wanted = set(indices)
    last = max(indices)
    got: dict[int, np.ndarray] = {}
    seen = Pass()
    with open_av(path) as container:
        # One forward pass: seeking by frame index is unreliable across containers, and clips are short.
        for i, frame in enumerate(_frames(container, _open_stream(container), seen)):
            if i in wanted:
                got[i] = _rgb(frame)
            if i >= last:
                break
    missing = sorted(wanted - set(got))
    if missing:
        raise VideoError(DECODE_ERROR, f"stream ended before frame {missing[0]} ({seen.count} frames decode)")
    return np.stack([got[i] for i in indices])


def _pyav_errors(path: str, fn, *args) -> np.ndarray:
    try:
        return fn(path, *args)
    except VideoError:
        raise
    except Exception as e:  # av.error.* (InvalidDataError, ...) for corrupt streams
        raise VideoError(DECODE_ERROR, scrub(f"pyav: {type(e).__name__}: {av_message(e)}", path)) from None


def decode_frames(path: str | os.PathLike, indices: Sequence[int], backend: str = "auto",
                  rotation: int | None = None) -> np.ndarray:  # fmt: skip
    """Decode the frames at `indices` (any order, repeats allowed) as uint8 (T, H, W, 3) RGB, upright.

    backend: "auto" (decord, then PyAV on failure), "decord" or "pyav". rotation: the stream's (`VideoInfo.rotation`),
    to save finding it again (rotated files are read by PyAV, which turns each frame by its own display matrix).
    Raises VideoError: 'empty' or 'unreadable' when the file cannot be opened or its container is refused (or, with
    backend 'decord', decord cannot open it), 'decode_error' when frames fail (an index beyond the frames that
    decode).
    """
    path = local_name(path)
    if len(indices) == 0:
        raise ValueError("no frame indices")
    if min(indices) < 0:
        raise ValueError(f"negative frame index {min(indices)}")
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be auto, decord or pyav, not {backend!r}")
    head = check_head(path)
    if _pick_decord(path, head, backend, rotation):
        frames = _try_decord(path, backend, lambda vr: _decode_decord(vr, indices))
        if frames is not None:
            return frames
    return _pyav_errors(path, _decode_pyav, indices)


# ---------------------------------------------------------------------------------------------- by time
def _times_decord(vr, times: Sequence[float]) -> np.ndarray:
    stamps = vr.get_frame_timestamp(list(range(len(vr))))  # (n, 2): start, end seconds from the stream start
    starts = stamps[:, 0] - stamps[0, 0]
    end = stamps[-1, 1] - stamps[0, 0]
    idx = [max(0, int(np.searchsorted(starts, t + 1e-6, side="right")) - 1) for t in times if t < end - 1e-6]
    if not idx:
        return np.zeros((0, 1, 1, 3), np.uint8)
    return vr.get_batch(idx).asnumpy()


def _times_pyav(path: str, times: Sequence[float]) -> np.ndarray:
    out: list[np.ndarray] = []
    seen = Pass()
    k, prev = 0, None
    with open_av(path) as container:
        for i, frame in enumerate(_frames(container, _open_stream(container), seen)):
            t = (seen.last_s - seen.first_s) if seen.last_s is not None and frame.pts is not None else (
                i / seen.nominal_fps if seen.nominal_fps else float(i))
            while k < len(times) and prev is not None and times[k] < t - 1e-6:
                out.append(_rgb(prev))  # the previous frame is on screen at times[k]
                k += 1
            if k == len(times):
                break
            prev = frame
        end = seen.duration_s
        while k < len(times) and prev is not None and times[k] < end - 1e-6:
            out.append(_rgb(prev))  # times within the last frame's display
            k += 1
    if times and seen.count == 0:
        raise VideoError(DECODE_ERROR, "no frame decodes")
    return np.stack(out) if out else np.zeros((0, 1, 1, 3), np.uint8)


def decode_frames_at_times(path: str | os.PathLike, times_s: Sequence[float], backend: str = "auto",
                           rotation: int | None = None) -> np.ndarray:  # fmt: skip
    """The frame a player shows at each time (seconds from the first frame, ascending), upright: uint8 (T', H, W, 3)
    for the leading T' times that fall inside the video (times past its end are left out).

    Times are presentation timestamps: a variable frame rate, or frames lost to a corrupt stretch, shift no other
    sample (the frame before a lost stretch stays on screen through it, as in a player). Raises VideoError like
    `decode_frames`; 'decode_error' when no frame decodes at all.
    """
    path = local_name(path)
    times = [float(t) for t in times_s]
    if any(b < a for a, b in zip(times, times[1:], strict=False)) or (times and times[0] < 0):
        raise ValueError("times must be ascending and non-negative")
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be auto, decord or pyav, not {backend!r}")
    head = check_head(path)
    if times and _pick_decord(path, head, backend, rotation):
        frames = _try_decord(path, backend, lambda vr: _times_decord(vr, times))
        if frames is not None:
            return frames
    return _pyav_errors(path, _times_pyav, times)


# ---------------------------------------------------------------------------------------------- counting
def scan(path: str | os.PathLike, stop_after: int | None = None) -> Pass:
    """One forward PyAV pass over the frames that decode (all of them, or until `stop_after` have): the count, the
    time they span, refused packets, whether the file was cut. Decodes every frame but converts none to RGB.

    Raises VideoError: 'empty' / 'unreadable' / 'no_video_stream' as probe. A corrupt stream is not an error here:
    what decodes is counted.
    """
    path = local_name(path)
    check_head(path)
    seen = Pass()
    with open_av(path) as container:
        for _ in _frames(container, _open_stream(container), seen):
            if stop_after is not None and seen.count >= stop_after:
                break
    return seen


def count_frames(path: str | os.PathLike) -> int:
    """Frames that actually decode (a full pass; slower than probe's container count, but true; `scan` says more).

    Raises VideoError: 'empty' / 'unreadable' / 'no_video_stream' as probe. Damage in the stream is counted
    around, not raised: a file cut short counts the frames before the cut.
    """
    return scan(path).count
