"""The decode job (CPU): one input -> chunk rows, each a few consecutive windows and the frames they need, decoded and
transformed once; or one reject row saying why the input gives no windows.

A video is read as ingest and the API read it (`videomae.video`): probed, then a `FrameReader` that trusts the
container's frame count until a read proves it wrong, counts once, and from then on keeps to the frames that decode.
Windows are whole windows within those frames (`videomae.video.windows`), in start order, as /v1/embed plans them: a
chunk that finds frames missing keeps its windows that still fit and drops the rest. A video is rejected only when
it holds no whole window, saying how many frames decode (the API's 422 `video_too_short`, the same reason).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from trainer.extraction.config import InputSection
from trainer.extraction.inputs import Video, is_shards
from videomae import listing, storage
from videomae.reasons import DECODE_ERROR, EMPTY, MISSING, NO_FRAMES, UNREADABLE
from videomae.transforms import CLIP_TRANSFORMS
from videomae.video import FrameReader, VideoError, clip_indices, decode_jpegs, probe, sniff_file
from videomae.video.windows import clip_span, fitting_windows, no_window


@dataclass(frozen=True)
class Windows:
    """Resolved window settings (the model's clip length and size filled in)."""

    clip_len: int
    frame_stride: int
    window_stride: int
    transform: str
    img_size: int
    windows_per_chunk: int



def describe_windows(win: Windows) -> dict:
    return {"clip_len": win.clip_len, "frame_stride": win.frame_stride, "window_stride": win.window_stride,
            "transform": win.transform, "img_size": win.img_size}



class Reject(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail[:500]


CHUNK_SCHEMA = pa.schema([("video_id", pa.string()), ("chunk", pa.int64()), ("num_chunks", pa.int64()),
                          ("reason", pa.string()), ("detail", pa.string()), ("payload", pa.binary())])


def _chunk_row(video_id: str, chunk: int, payload: dict | None = None, num_chunks: int = 0,
               reject: Reject | None = None) -> dict:
    return {"video_id": video_id, "chunk": chunk, "num_chunks": num_chunks,
            "reason": reject.reason if reject else "", "detail": reject.detail if reject else "",
            "payload": pickle.dumps(payload, protocol=5) if payload is not None else b""}


def _transformed(reader: FrameReader, indices: list[int], win: Windows, slab: int = 16) -> torch.Tensor | None:
    """Decode and transform `indices` (sorted, unique) a slab at a time: (3, F, S, S); peak memory is one slab of
    full-size frames, not the chunk's. None when some of the frames do not exist (the reader has counted them)."""
    transform = CLIP_TRANSFORMS[win.transform]
    parts = []
    for i in range(0, len(indices), slab):
        frames = reader.read(indices[i:i + slab])  # (T, H, W, 3) uint8, upright
        if frames is None:
            return None
        parts.append(transform(frames, win.img_size))
    return torch.cat(parts, dim=1)


def window_plan(num_frames: int, win: Windows) -> list[tuple[int, list[int]]]:
    """(start frame, frame indices) of every whole window within `num_frames` frames: /v1/embed's windows, and the
    reference's THUMOS14 ones (`range(0, num_frames - 15, 4)` for 16 frames every 4)."""
    return [(s, clip_indices(clip_len=win.clip_len, stride=win.frame_stride, start=s))
            for s in fitting_windows(num_frames, win.clip_len, win.frame_stride, win.window_stride)]


def _starts(reader: FrameReader, win: Windows, start: int | None) -> list[int]:
    """Window starts within the reader's frames: every window, or the one from `start`."""
    if start is None:
        return [s for s, _ in window_plan(reader.num_frames, win)]
    return [start] if start + clip_span(win.clip_len, win.frame_stride) <= reader.num_frames else []


def _refusal(reader: FrameReader, win: Windows, start: int | None) -> Reject:
    """Why the reader's frames hold no window (from `start`)."""
    span, n = clip_span(win.clip_len, win.frame_stride), reader.num_frames
    if start is None or n < span:
        return Reject(*no_window(reader, win.clip_len, win.frame_stride))
    return Reject(NO_FRAMES, f"start frame {start}: the window from there needs frames up to {start + span - 1}, the "
                             f"video has {n}; start at most {n - span}")


def _video_chunks(video: Video, path: str, win: Windows, start: int | None) -> Iterator[tuple[dict, int]]:
    """The chunk payloads of a local video file, in order, each with the number of chunks planned when it was made
    (an upper bound: a count that proves the claim wrong only drops windows). Raises Reject, VideoError."""
    info = probe(path)
    if info.num_frames <= 0:
        raise Reject(EMPTY, "the video stream has no frames")
    reader = FrameReader.from_claim(path, info)
    starts = _starts(reader, win, start)
    if not starts and not reader.length.counted:
        reader.recount()  # a claim too short for one window is counted (headers understate too), as the API does
        starts = _starts(reader, win, start)
    if not starts:
        raise _refusal(reader, win, start)
    done, made = 0, 0
    while done < len(starts):
        group = starts[done:done + win.windows_per_chunk]
        windows = [clip_indices(clip_len=win.clip_len, stride=win.frame_stride, start=s) for s in group]
        wanted = sorted({i for idx in windows for i in idx})
        frames = _transformed(reader, wanted, win)  # (3, F, S, S)
        if frames is None:  # the claim promised frames that do not decode: keep the windows within those that do
            fits = set(_starts(reader, win, start))
            starts = [s for s in starts if s in fits]
            if not starts:
                raise _refusal(reader, win, start)
            continue
        local = np.searchsorted(wanted, np.asarray(windows))  # (G, T) into frames
        done, made = done + len(group), made + 1
        planned = made + -(-(len(starts) - done) // win.windows_per_chunk)
        yield {"frames": frames.numpy(), "local": local.astype(np.int32), "starts": group,
               "ends": [idx[-1] for idx in windows],
               "clip_ids": [listing.make_clip_id(video.video_id, s, win.frame_stride) for s in group],
               "fps": float(reader.length.fps)}, planned


def video_chunks(video: Video, win: Windows, options: storage.Options = None, start: int | None = None
                 ) -> Iterator[dict]:
    """The chunk rows of one video (`start`: only the window starting there); a single reject row (chunk -1) when it
    cannot be read, even after chunks. A row's `num_chunks` is the number of chunks planned when the next one was
    made (each row waits for the next chunk): an upper bound, since a count that proves the claim wrong only lowers
    it; the last row's is exact. The collector takes the least it sees."""
    try:
        with storage.local_file(video.uri, options) as path:
            if sniff_file(path) is None:
                size = storage.size(video.uri, options)
                raise Reject(EMPTY if size == 0 else UNREADABLE, "not a recognised video container")
            held, ci = None, 0
            for payload, planned in _video_chunks(video, path, win, start):
                if held is not None:
                    yield _chunk_row(video.video_id, ci - 1, held, num_chunks=planned)
                held, ci = payload, ci + 1
            yield _chunk_row(video.video_id, ci - 1, held, num_chunks=ci)
    except Reject as e:
        yield _chunk_row(video.video_id, -1, reject=e)
    except VideoError as e:
        yield _chunk_row(video.video_id, -1, reject=Reject(e.reason, e.detail or e.reason))
    except FileNotFoundError:
        yield _chunk_row(video.video_id, -1, reject=Reject(MISSING, "listed but not found"))


def shard_chunks(video: Video, win: Windows, options: storage.Options = None) -> Iterator[dict]:
    """Shard input: one chunk per clip part file holding the video's clips; each stored clip is one window."""
    transform = CLIP_TRANSFORMS[win.transform]
    try:
        for ci, f in enumerate(video.shard_files):
            with storage.open_file(f, "rb", options) as fh:
                t = pq.read_table(fh, filters=[("video_id", "=", video.video_id)],
                                          columns=["clip_id", "start_frame", "stride", "num_frames", "fps", "frames"])
            rows = t.to_pylist()
            if not rows:
                raise Reject(NO_FRAMES, "no clips of this video in its shard part")
            for r in rows:
                if r["num_frames"] != win.clip_len:
                    raise Reject(DECODE_ERROR, f"a stored clip has {r['num_frames']} frames; the model takes "
                                                 f"{win.clip_len}")
            clips = [transform(decode_jpegs(r["frames"]), win.img_size) for r in rows]  # each (3, T, S, S)
            t_len = win.clip_len
            payload = {"frames": torch.cat(clips, dim=1).numpy(),
                       "local": np.arange(len(rows) * t_len, dtype=np.int32).reshape(len(rows), t_len),
                       "starts": [r["start_frame"] for r in rows],
                       "ends": [r["start_frame"] + (r["num_frames"] - 1) * r["stride"] for r in rows],
                       "clip_ids": [r["clip_id"] for r in rows], "fps": float(rows[0]["fps"] or 0.0)}
            yield _chunk_row(video.video_id, ci, payload, num_chunks=len(video.shard_files))
    except Reject as e:
        yield _chunk_row(video.video_id, -1, reject=e)
    except (OSError, ValueError) as e:  # a JPEG that does not decode, an unreadable part
        yield _chunk_row(video.video_id, -1, reject=Reject(DECODE_ERROR, f"{type(e).__name__}: {e}"))



def chunk_source(inp: InputSection) -> Callable[[Video, Windows, storage.Options], Iterator[dict]]:
    return shard_chunks if is_shards(inp) else video_chunks


