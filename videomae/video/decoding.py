"""Decoding: uint8 RGB frames (T, H, W, 3) at given frame indices, decord first, PyAV as the fallback where decord
is missing, fails, or may not read the file (`safety.decord_may_read`); and `count_frames`, the frames that
actually decode. Frame indices count decoded frames from 0 in presentation order, as decord and the reference do."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from videomae.video.safety import VideoError, av_message, check_head, decord_may_read, local_name, open_av, scrub

log = logging.getLogger(__name__)

try:  # decord has no wheels for every platform (aarch64, macOS arm); PyAV covers those.
    import decord

    decord.bridge.set_bridge("native")
except ImportError:  # pragma: no cover - exercised only where decord is absent
    decord = None


def _decode_decord(path: str, indices: Sequence[int]) -> np.ndarray:
    vr = decord.VideoReader(path, num_threads=1)
    n = len(vr)
    if max(indices) >= n:
        raise VideoError("decode_error", f"frame {max(indices)} beyond the {n} frames decord sees")
    return vr.get_batch(list(indices)).asnumpy()  # (T, H, W, 3)


def _decode_pyav(path: str, indices: Sequence[int]) -> np.ndarray:
    wanted = sorted(set(indices))
    got: dict[int, np.ndarray] = {}
    with open_av(path) as container:
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
    path = local_name(path)
    if len(indices) == 0:
        raise ValueError("no frame indices")
    if min(indices) < 0:
        raise ValueError(f"negative frame index {min(indices)}")
    if backend not in ("auto", "decord", "pyav"):
        raise ValueError(f"backend must be auto, decord or pyav, not {backend!r}")
    head = check_head(path)
    if backend in ("auto", "decord") and decord is not None:
        allowed, fmt = decord_may_read(path, head)
        if not allowed and backend == "decord":
            raise VideoError("unreadable", f"decord is only used on recognised binary containers, not {fmt}")
        if allowed:
            try:
                return _decode_decord(path, indices)
            except Exception as e:  # decord raises its own DECORDError and plain RuntimeErrors
                if backend == "decord":
                    raise VideoError("decode_error", scrub(f"decord: {e}", path)) from None
                log.debug("decord failed (%s); falling back to PyAV", scrub(str(e), path))
    try:
        return _decode_pyav(path, indices)
    except VideoError:
        raise
    except Exception as e:  # av.error.* (InvalidDataError, ...) for corrupt streams
        raise VideoError("decode_error", scrub(f"pyav: {type(e).__name__}: {av_message(e)}", path)) from None


def count_frames(path: str | os.PathLike) -> int:
    """Frames that actually decode (a full pass; slower than probe's container count, but exact).

    Raises VideoError: 'empty' / 'unreadable' / 'no_video_stream' as probe, 'decode_error' for a corrupt stream.
    """
    path = local_name(path)
    check_head(path)
    with open_av(path) as container:
        if not container.streams.video:
            raise VideoError("no_video_stream", "no video stream to decode")
        try:
            return sum(1 for _ in container.decode(video=0))
        except Exception as e:  # av.error.InvalidDataError and kin, mid-stream
            raise VideoError("decode_error", scrub(f"{type(e).__name__}: {av_message(e)}", path)) from None
