"""The one record type every ingest step takes and returns.

A `VideoRecord` is born in listing (uri, source, split, label name), gains probe facts, a fingerprint, its merged
label, its fate in dedupe (kept, with a part to be written in, or the duplicate of a kept video) and its clip count.
A step that cannot go on sets `reason` (one of `videomae.reasons.REASONS`) and `detail`; later steps pass rejected
records through untouched, so every input reaches the end in exactly one place (kept, duplicate or rejected). Records
cross Ray as they are (pickled), never as dicts.
"""

from __future__ import annotations

from dataclasses import dataclass

from videomae.listing import make_clip_id, make_video_id  # noqa: F401 (the ids, shared with feature extraction)
from videomae.reasons import reason as declared_reason


@dataclass
class VideoRecord:
    uri: str
    source: str
    source_index: int  # position of the source in the config (the survivor rule's last tie-break)
    kind: str  # unlabeled | labeled
    split: str
    key: str  # what the id is derived from (see make_video_id)
    label_name: str | None = None  # as written by the source
    label: int | None = None  # merged index, set once labels are merged
    video_id: str = ""
    # probe: what decodes (docs/architecture.md: not what the header claims; the claim is kept beside it)
    size_bytes: int = 0
    duration_s: float = 0.0
    fps: float = 0.0
    num_frames: int = 0
    width: int = 0  # as shown (after rotation)
    height: int = 0
    codec: str = ""
    header_num_frames: int = 0
    header_duration_s: float = 0.0
    header_fps: float = 0.0
    frames_counted: bool = False  # the claim failed: every frame was decoded and counted (then read with PyAV)
    stream_index: int = 0  # the container's index of the video stream read (the first default one, else the first)
    video_streams: int = 0
    rotation: int = 0  # counterclockwise degrees the stored frames are turned to be shown (and stored) upright
    # fingerprint
    sha256: str = ""
    signature: bytes = b""
    # dedupe: the kept video this one copies, or the part a kept video is written in
    duplicate_of: str | None = None
    duplicate_kind: str = ""  # exact | near
    duplicate_distance: float = 0.0
    part: int | None = None
    # clips: how many were written, and whether an earlier run had written its part already
    clips: int = 0
    part_reused: bool = False
    # outcome
    reason: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if not self.video_id:
            self.video_id = make_video_id(self.source, self.key)

    @property
    def ok(self) -> bool:
        return self.reason is None

    def reject(self, reason: str, detail: str = "") -> VideoRecord:
        declared_reason(reason)  # a KeyError for a reason nobody declared
        self.reason = reason
        self.detail = detail[:500]
        return self

    @property
    def kept(self) -> bool:
        return self.ok and self.duplicate_of is None

