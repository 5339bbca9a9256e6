"""Which video stream of a container is read, and which way up its frames are shown; one answer for every reader.

- **The stream** (`pick_stream`): cover art (an `attached_pic` "video" stream of one picture in an audio file) is
  not video. Of the real video streams, the first one marked `default` is read, else the first; `VideoInfo`
  records its container index (`stream_index`) and how many there are (`video_streams`). decord picks a stream
  by its own rule, so it only reads files with exactly one video stream (`safety.decord_may_read`).
- **Rotation**: phones store frames sideways with a display matrix (MP4/MOV `tkhd`), and a player turns them.
  libavcodec attaches the matrix to every decoded frame; PyAV reports it as `VideoFrame.rotation`, counterclockwise
  degrees (ffmpeg's `av_display_rotation_get`). `upright` turns decoded frames the way ffmpeg's player path
  (`-autorotate`, its default) does, so every reader returns frames as a player shows them. PyAV does not expose the
  stream's matrix without decoding, so `first_frame_rotation` decodes the first frame (about one frame's decode:
  measured in docs/ingest.md "Probe cost"). Mirrored matrices (a flip besides the turn) are read as the turn alone.
"""

from __future__ import annotations

import numpy as np

MAX_PACKETS_FOR_FIRST_FRAME = 64  # a stream that yields no frame within this many packets is probed as unrotated


def video_streams(container) -> list:
    """The container's real video streams, cover art excluded, in container order."""
    import av

    attached = av.stream.Disposition.attached_pic
    return [s for s in container.streams.video if not s.disposition & attached]


def pick_stream(container):
    """The stream every reader decodes: the first `default` video stream, else the first; None if there is none."""
    import av

    streams = video_streams(container)
    default = [s for s in streams if s.disposition & av.stream.Disposition.default]
    return (default or streams or [None])[0]


def normalise_rotation(degrees: float | None) -> int:
    """Counterclockwise degrees -> 0, 90, 180 or 270 (the nearest quarter turn)."""
    return int(round((degrees or 0) / 90.0)) % 4 * 90


def upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """An (H, W, 3) or (T, H, W, 3) decoded frame turned `rotation` degrees counterclockwise, as players show it."""
    k = normalise_rotation(rotation) // 90
    if k == 0:
        return frame
    axes = (0, 1) if frame.ndim == 3 else (1, 2)
    return np.ascontiguousarray(np.rot90(frame, k, axes=axes))


def first_frame_rotation(container, stream) -> int:
    """Rotation of the stream's first decodable frame (0 when none decodes within a few packets)."""
    for n, packet in enumerate(container.demux(stream)):
        if n >= MAX_PACKETS_FOR_FIRST_FRAME:
            break
        try:
            frames = packet.decode()
        except Exception:  # av.error.*: a damaged first packet; the next keyframe may still decode
            continue
        if frames:
            return normalise_rotation(frames[0].rotation)
    return 0
