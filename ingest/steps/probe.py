"""Step probe: existence, size, the container's claims (streams, duration, fps, frame count, codec, size, rotation),
and how long the video really is (`videomae.video.verify_length`: the claim if its last frame decodes, else the
frames that decode, counted). Records carry what decodes; the claim is kept beside it (`header_*`)."""

from __future__ import annotations

from ingest.config import IngestConfig
from ingest.records import VideoRecord
from videomae import storage, video
from videomae.reasons import DECODE_ERROR, EMPTY, MISSING, TOO_SHORT, UNREADABLE
from videomae.video.windows import clip_span


def set_length(rec: VideoRecord, length: video.Length) -> VideoRecord:
    """The record's frames, seconds and rate become `length`'s (what decodes)."""
    rec.num_frames, rec.duration_s, rec.fps = length.num_frames, length.duration_s, length.fps
    rec.frames_counted = length.counted
    return rec


def record_length(rec: VideoRecord) -> video.Length:
    return video.Length(rec.num_frames, rec.duration_s, rec.fps, counted=rec.frames_counted)


def too_short_detail(rec: VideoRecord, span: int) -> str:
    """The too_short detail: the frames that decode (and what the header claimed, where the two differ)."""
    claim = f"; the header claims {rec.header_num_frames}" if rec.header_num_frames != rec.num_frames else ""
    return f"{rec.num_frames} frames decode{claim}; one clip needs {span}"


def probe_record(rec: VideoRecord, cfg: IngestConfig) -> VideoRecord:
    if not rec.ok:
        return rec
    options = cfg.source(rec.source).storage_options
    try:
        size = storage.file_size(rec.uri, options)
    except (PermissionError, NotADirectoryError) as e:  # the input's own state, the same on every rerun
        return rec.reject(MISSING, str(e))
    except OSError as e:
        # A storage fault (an I/O error, a timeout) stops the job, naming the file, instead of dropping the input as
        # missing: the run would complete with a dataset short of it, and a rerun would reuse that verdict.
        raise OSError(e.errno, f"cannot read {rec.uri}: {e.strerror or e}") from e
    if size is None:
        return rec.reject(MISSING, rec.uri)
    rec.size_bytes = size
    if rec.size_bytes == 0:
        return rec.reject(EMPTY, "0 bytes")
    try:
        with storage.local_file(rec.uri, options) as local:
            info = video.probe(local)
            if info.fps <= 0 or info.width <= 0 or info.height <= 0:
                return rec.reject(UNREADABLE, f"video stream without rate or size (fps={info.fps}, "
                                              f"{info.width}x{info.height})")  # fmt: skip
            length = video.verify_length(local, info, backend=cfg.decode_backend)
    except video.VideoError as e:
        return rec.reject(e.reason, e.detail)
    rec.header_num_frames, rec.header_duration_s, rec.header_fps = info.num_frames, info.duration_s, info.fps
    rec.width, rec.height, rec.codec, rec.rotation = info.width, info.height, info.codec, info.rotation
    rec.stream_index, rec.video_streams = info.stream_index, info.video_streams
    set_length(rec, length)
    if rec.num_frames == 0:
        return rec.reject(DECODE_ERROR, f"no frame decodes; the header claims {rec.header_num_frames}")
    span = clip_span(cfg.clips.num_frames, cfg.stride_for(cfg.source(rec.source)))
    if rec.num_frames < span:
        return rec.reject(TOO_SHORT, too_short_detail(rec, span))
    return rec
