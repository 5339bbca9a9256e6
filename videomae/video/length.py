"""How long a video really is: the header's claim where it holds, else the frames that decode.

Containers claim a frame count and a duration (`probe`); damaged and unusual files claim more than they hold (a file
cut during download, an AVI whose recorder died, Matroska whose count is estimated from a nominal rate). Two ways to
read a file, one rule:

- `verify_length(path, info)` (ingest's probe step): the fast path decodes the claimed last frame (decord seeks to
  it: one GOP, no full decode); when it decodes, the claim stands (`Length.counted` False). When it does not, every
  frame is decoded once and counted (`scan`), and that count, the time the frames span and their rate are the
  video's length (`counted` True).
- `FrameReader(path, length)` (ingest's signatures and clips, the API's windows, batch jobs): reads frames by
  index (or by time) trusting `length`; if a read fails (a corrupt stretch the fast path did not cross), it counts
  once, and from then on reads with PyAV, the backend that defined the count, and answers None for frames that do
  not exist, so the caller re-plans within `length` instead of failing.

A header that *understates* its video is believed (fewer frames are used; nothing fails).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from videomae.reasons import DECODE_ERROR
from videomae.video import decoding
from videomae.video.decoding import Pass, decode_frames, decode_frames_at_times, scan
from videomae.video.probing import VideoInfo
from videomae.video.safety import VideoError, local_name


def _six(x: float) -> float:
    return float(f"{x:.6f}")


@dataclass(frozen=True)
class Length:
    """Frames, seconds and rate of a video as read. `counted`: every frame was decoded and counted (the header's claim
    failed); then `fps` is frames per second of decoded time, and `errors` the packets the decoder refused."""

    num_frames: int
    duration_s: float
    fps: float
    counted: bool = False
    errors: int = 0

    @classmethod
    def claimed(cls, info: VideoInfo) -> Length:
        return cls(info.num_frames, info.duration_s, info.fps)

    @classmethod
    def decoded(cls, seen: Pass) -> Length:
        d = seen.duration_s
        fps = seen.count / d if d > 0 else seen.nominal_fps
        return cls(seen.count, _six(d), _six(fps), counted=True, errors=seen.errors)


def verify_length(path: str | os.PathLike, info: VideoInfo, backend: str = "auto", limit: int | None = None) -> Length:
    """The claim if its last frame decodes (decord's seek; PyAV decodes forward to it where decord may not read the
    file), else the frames that decode, counted. `limit`: a caller that refuses more than `limit` frames stops the
    count there (num_frames is then limit + 1, meaning "more"). Raises VideoError ('empty', 'unreadable',
    'no_video_stream') for files that cannot be opened; a video with no decodable frame has length 0."""
    path = local_name(path)
    n = info.num_frames
    if n > 0 and backend != "pyav" and decoding.decord is not None:
        try:
            decode_frames(path, [n - 1], backend="decord", rotation=info.rotation)
            return Length.claimed(info)
        except VideoError:
            pass  # refused to decord, or the claim is wrong: PyAV decides
    stops = [x for x in (n if n > 0 else None, None if limit is None else limit + 1) if x is not None]
    seen = scan(path, stop_after=min(stops) if stops else None)
    if n > 0 and seen.count >= n:
        return Length.claimed(info)  # PyAV reaches the claimed last frame
    return Length.decoded(seen)


class FrameReader:
    """Frames of one video, trusting `length` until a decode fails; then counting once (`length` becomes what decodes)
    and reading with PyAV from there on. `read` (by index) answers None for frames beyond `length`.

    The fast path is decord where it may read the file (`decoding.decord_plan`). A file decord cannot open goes to
    PyAV as it is; frames decord fails to decode count the frames (decord numbers the frames a damaged file's index
    lists, PyAV the frames that decode, so the two are not mixed). Elsewhere PyAV reads; a PyAV read that finds frames
    missing counts them too. A corrupt stretch no read touches is not noticed: the claim it leaves standing is still
    the frames the reads got.
    """

    def __init__(self, path: str | os.PathLike, length: Length, backend: str = "auto", rotation: int | None = None):
        if backend not in ("auto", "decord", "pyav"):
            raise ValueError(f"backend must be auto, decord or pyav, not {backend!r}")
        self.path = local_name(path)
        self.length = length
        self.claimed = length  # what the reader was given (a header's claim, or a count)
        self.backend = backend
        self.rotation = rotation
        self._decord: bool | None = None  # decided on the first read

    @classmethod
    def from_claim(cls, path: str | os.PathLike, info: VideoInfo) -> FrameReader:
        """A reader of a probed video, trusting the container's count until a read proves it wrong."""
        return cls(path, Length.claimed(info), rotation=info.rotation)

    @property
    def num_frames(self) -> int:
        return self.length.num_frames

    def recount(self) -> Length:
        """Count the frames that decode (a full pass), once; the reader keeps to them from now on."""
        if not self.length.counted:
            self.length = Length.decoded(scan(self.path))
        return self.length

    def _fast(self) -> bool:
        """Whether this read goes to decord: not yet counted, and decord may read the file."""
        if self.length.counted or self.backend == "pyav" or decoding.decord is None:
            return False
        if self._decord is None:
            self._decord, _ = decoding.decord_plan(self.path, rotation=self.rotation)
        return self._decord

    def _decode(self, fn, arg):
        """fn(path, arg, backend=..., rotation=...) on the fast path; else, or where decord fails, with PyAV (counting
        first when decord opened the file but its frames failed)."""
        if self._fast():
            try:
                return fn(self.path, arg, backend="decord", rotation=self.rotation)
            except VideoError as e:
                if e.reason == DECODE_ERROR:
                    self.recount()
                self._decord = False  # decord cannot open it (or counted): PyAV from now on
        return fn(self.path, arg, backend="pyav", rotation=self.rotation)

    def read(self, indices: Sequence[int]) -> np.ndarray | None:
        """uint8 (T, H, W, 3) upright frames at `indices`, or None if any index is beyond the frames that exist.
        Raises VideoError only for a file that cannot be read at all, or frames that fail after counting."""
        while max(indices) < self.length.num_frames:
            counted_before = self.length.counted
            try:
                return self._decode(decode_frames, indices)
            except VideoError as e:
                if e.reason != DECODE_ERROR or counted_before:
                    raise
            self.recount()  # frames the claim promised are missing; the loop checks the indices against the count
        return None

    def at_times(self, times_s: Sequence[float]) -> np.ndarray:
        """`decode_frames_at_times` through the same fast path: (T', H, W, 3) for the leading times inside the video."""
        return self._decode(decode_frames_at_times, times_s)
