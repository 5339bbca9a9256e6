"""Clip shard format (ingest output = trainer input); see docs/architecture.md "Clip shards".

A dataset directory holds manifest.json, labels.json, videos.parquet, duplicates.parquet, rejects.parquet
and clips/part-*.parquet. The schemas below are the contract; `read_clips` is the reader the trainer uses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from videomae import storage

FORMAT_VERSION = 1

VIDEOS_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("uri", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("label", pa.int32()),  # merged label index; null for unlabeled sources
        # What decodes, not what the container header claims (docs/architecture.md): the frames clips are cut from.
        ("duration_s", pa.float64()),  # seconds the decoded frames span
        ("fps", pa.float64()),  # the header's rate where its count held; else decoded frames per decoded second
        ("num_frames", pa.int64()),
        ("width", pa.int32()),  # as shown and stored: after the display rotation
        ("height", pa.int32()),
        ("codec", pa.string()),
        ("sha256", pa.string()),
        ("signature", pa.binary()),  # perceptual signature, uint8 (K, L, D); see ingest/signature.py
        # What the container header claimed; equal to the three above unless the claim failed.
        ("header_num_frames", pa.int64()),
        ("header_duration_s", pa.float64()),
        ("header_fps", pa.float64()),
        ("frames_counted", pa.bool_()),  # True: the claim failed and every frame was decoded and counted
        ("stream_index", pa.int32()),  # which video stream was read (container index; the first default, else first)
        ("video_streams", pa.int32()),  # how many video streams the file has (cover art excluded)
        ("rotation", pa.int32()),  # 0/90/180/270: the display rotation applied; frames are stored upright
    ]
)

DUPLICATES_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("kept_video_id", pa.string()),
        ("kind", pa.string()),  # exact | near
        ("distance", pa.float64()),
        # Not in the minimal contract but needed to account for every input: where the dropped copy came from.
        ("uri", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        ("uri", pa.string()),
        ("source", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
    ]
)

CLIPS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("label", pa.int32()),
        ("start_frame", pa.int32()),
        ("stride", pa.int32()),
        ("num_frames", pa.int32()),
        ("fps", pa.float64()),
        ("height", pa.int32()),
        ("width", pa.int32()),
        ("frames", pa.list_(pa.binary())),  # one JPEG per frame, short side resized
    ]
)


def clip_files(path: str, options: storage.Options = None) -> list[str]:
    """The clip part files of a dataset directory (or URI), sorted; a single parquet file is returned as is."""
    if path.rstrip("/").endswith(".parquet"):
        return [path.rstrip("/")]
    files = storage.glob(storage.join(path, "clips/part-*.parquet"), options)
    if not files:
        raise FileNotFoundError(f"no clips/part-*.parquet under {path}")
    return files


def read_clips(path: str, columns: list[str] | None = None, split: str | None = None,
               options: storage.Options = None) -> pa.Table:
    """All clip rows of a dataset (optionally one split, a subset of columns) as one pyarrow Table."""
    tables = []
    for f in clip_files(path, options):
        with storage.open_file(f, "rb", options) as fh:
            t = pq.read_table(fh, columns=columns)
        if split is not None:
            t = t.filter(pa.compute.equal(t["split"], split)) if "split" in t.column_names else t
        tables.append(t)
    return pa.concat_tables(tables) if tables else CLIPS_SCHEMA.empty_table()


def iter_clips(path: str, split: str | None = None, batch_size: int = 64, options: storage.Options = None
               ) -> Iterator[dict]:
    """Clip rows one at a time (dicts), streaming part by part; memory stays at one row group."""
    for f in clip_files(path, options):
        with storage.open_file(f, "rb", options) as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=batch_size):
                for row in batch.to_pylist():
                    if split is None or row["split"] == split:
                        yield row


def read_json(path: str, name: str, options: storage.Options = None) -> dict:
    """manifest.json or labels.json of a dataset directory."""
    return json.loads(storage.read_text(storage.join(path, name), options))


def read_labels(path: str, options: storage.Options = None) -> dict:
    """labels.json: {"names": [...merged...], "sources": {name: {"classes": [...], "to_merged": [...]}}}."""
    return read_json(path, "labels.json", options)
