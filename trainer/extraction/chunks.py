"""The decode job (CPU): one input -> chunk rows, each a few consecutive windows and the frames they need, decoded and
transformed once; or one reject row saying why the input gives no windows."""

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
from videomae.transforms import CLIP_TRANSFORMS, sliding_windows
from videomae.video import VideoError, clip_indices, decode_frames, decode_jpegs, probe, sniff_file


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


def _transformed(path: str, indices: list[int], win: Windows, slab: int = 16) -> torch.Tensor:
    """Decode and transform `indices` (sorted, unique) a slab at a time: (3, F, S, S); peak memory is one slab of
    full-size frames, not the chunk's."""
    transform = CLIP_TRANSFORMS[win.transform]
    parts = [transform(decode_frames(path, indices[i:i + slab]), win.img_size) for i in range(0, len(indices), slab)]
    return torch.cat(parts, dim=1)


def window_plan(num_frames: int, win: Windows) -> list[tuple[int, list[int]]]:
    """(start frame, frame indices) of every window of a video: /v1/embed's windows (at least one; a video shorter
    than a window repeats its last frame, as the reference's loaders do)."""
    starts = sliding_windows(num_frames, win.clip_len, win.frame_stride, win.window_stride)
    return [(s, clip_indices(clip_len=win.clip_len, stride=win.frame_stride, start=s, total_frames=num_frames))
            for s in starts]


def video_chunks(video: Video, win: Windows, options: storage.Options = None, start: int | None = None
                 ) -> Iterator[dict]:
    """The chunk rows of one video (`start`: only the window starting there); a single reject row (chunk -1) when it
    cannot be read, even after chunks."""
    try:
        with storage.local_file(video.uri, options) as path:
            if sniff_file(path) is None:
                size = storage.size(video.uri, options)
                raise Reject(EMPTY if size == 0 else UNREADABLE, "not a recognised video container")
            info = probe(path)
            if info.num_frames <= 0:
                raise Reject(NO_FRAMES, "the video stream has no frames")
            plan = window_plan(info.num_frames, win)
            if start is not None:
                if start >= info.num_frames:
                    raise Reject(NO_FRAMES, f"start frame {start} is beyond the video's {info.num_frames} frames")
                plan = [(start, clip_indices(clip_len=win.clip_len, stride=win.frame_stride, start=start,
                                             total_frames=info.num_frames))]
            groups = [plan[i:i + win.windows_per_chunk] for i in range(0, len(plan), win.windows_per_chunk)]
            for ci, group in enumerate(groups):
                wanted = sorted({i for _, idx in group for i in idx})
                frames = _transformed(path, wanted, win)  # (3, F, S, S)
                local = np.searchsorted(wanted, np.asarray([idx for _, idx in group]))  # (G, T) into frames
                payload = {"frames": frames.numpy(), "local": local.astype(np.int32),
                           "starts": [s for s, _ in group], "ends": [idx[-1] for _, idx in group],
                           "clip_ids": [listing.make_clip_id(video.video_id, s, win.frame_stride) for s, _ in group],
                           "fps": float(info.fps)}
                yield _chunk_row(video.video_id, ci, payload, num_chunks=len(groups))
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


