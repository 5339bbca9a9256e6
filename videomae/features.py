"""Clip feature datasets (feature extraction output = search index input); see docs/architecture.md "Features".

A features directory holds
    manifest.json          version, the model (config, weights fingerprint, feature), the window settings, counts
    features/part-*.parquet one row per window: FEATURES_SCHEMA
    rejects.parquet        one row per input that gave no features, with its reason (`videomae.reasons`)
    npy/<key>.npy          optionally, the reference's layout: one (num_windows, C) float32 array per video
Every listed input is in exactly one of features and rejects. A part file is written atomically once all of its
videos are done, so a part on disk is a finished unit: a rerun skips the videos it holds.

Beyond the five columns of docs/architecture.md (video_id, uri, start_frame, end_frame, feature) a row carries its
`clip_id` (the ingest clip id for shard input; the same formula for videos), `fps` (so a search result can say where
in the video it is, in seconds) and `label` (the class name when the input knows it, else null).
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from videomae import storage

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
REJECTS = "rejects.parquet"

FEATURES_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("uri", pa.string()),
        ("clip_id", pa.string()),
        ("start_frame", pa.int32()),  # first frame of the window (decoded-frame order, from 0)
        ("end_frame", pa.int32()),  # last frame the window covers, clamped to the video (inclusive, as /v1/embed)
        ("fps", pa.float64()),
        ("label", pa.string()),  # class name when known
        ("feature", pa.list_(pa.float32())),  # the model's pooled clip feature, not normalised
    ]
)

REJECTS_SCHEMA = pa.schema(
    [("video_id", pa.string()), ("uri", pa.string()), ("reason", pa.string()), ("detail", pa.string())]
)

# ---------------------------------------------------------------------------------------------- files
def part_files(path: str, options: storage.Options = None) -> list[str]:
    """The feature part files of a features directory, sorted (empty when there are none yet)."""
    if not storage.exists(storage.join(path, "features"), options):
        return []
    return storage.glob(storage.join(path, "features/part-*.parquet"), options)


def part_name(video_ids: Iterable[str]) -> str:
    """A part's file name from the ids it holds: the same videos give the same name on every run."""
    return f"part-{hashlib.sha256(chr(0).join(video_ids).encode()).hexdigest()[:16]}.parquet"


def read_features(path: str, columns: list[str] | None = None, options: storage.Options = None) -> pa.Table:
    """Every feature row of a features directory (optionally some columns) as one Table."""
    tables = []
    for f in part_files(path, options):
        with storage.open_file(f, "rb", options) as fh:
            tables.append(pq.read_table(fh, columns=columns))
    if not tables:
        schema = FEATURES_SCHEMA if columns is None else pa.schema([FEATURES_SCHEMA.field(c) for c in columns])
        return schema.empty_table()
    return pa.concat_tables(tables)


def feature_matrix(table: pa.Table) -> np.ndarray:
    """The `feature` column as a (rows, C) float32 array (every row has the same length)."""
    col = table["feature"].combine_chunks()
    n = len(col)
    if n == 0:
        return np.zeros((0, 0), np.float32)
    values = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if values.size % n:
        raise ValueError("feature rows of different lengths")
    return values.reshape(n, values.size // n)


def features_table(rows: dict[str, list], feats: np.ndarray) -> pa.Table:
    """A FEATURES_SCHEMA table from column lists (every column but `feature`) and (rows, C) features."""
    n, c = feats.shape
    offsets = pa.array(np.arange(0, (n + 1) * c, c, dtype=np.int32))
    feature = pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(feats, np.float32).ravel()))
    cols = {name: pa.array(rows[name], FEATURES_SCHEMA.field(name).type) for name in FEATURES_SCHEMA.names[:-1]}
    return pa.table({**cols, "feature": feature}, schema=FEATURES_SCHEMA)


def write_table(uri: str, table: pa.Table, options: storage.Options = None) -> None:
    """A Parquet file written atomically (a reader, or a rerun after a crash, never sees half of it)."""
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(uri, buf.getvalue(), options)


def npy_name(key: str) -> str:
    """`npy/<key without extension>.npy`: the reference names each array after its video file."""
    return "npy/" + posixpath.splitext(key)[0].lstrip("/") + ".npy"


def write_npy(uri: str, array: np.ndarray, options: storage.Options = None) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, np.float32))
    storage.write_bytes(uri, buf.getvalue(), options)


def read_manifest(path: str, options: storage.Options = None) -> dict | None:
    text = storage.read_text_or_none(storage.join(path, MANIFEST), options)
    return None if text is None else json.loads(text)


# ---------------------------------------------------------------------------------------------- identity
def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the model's parameter and buffer names and bytes: the same weights give the same fingerprint
    whichever file format (ours, the reference's .pth, Hugging Face) they were loaded from. The search index records
    it, so the API knows whether the model it serves made the index's features."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]
