"""Nearest-clip search over extracted features: an index built from a features directory (videomae/features.py).

The index is faiss (faiss-cpu): chosen by measurement against usearch, hnswlib and LanceDB on this project's
machines (docs/extract.md, "Choosing the index library"): exact search (`IndexFlatIP`) builds instantly and answers
10^5 vectors in milliseconds; `IndexHNSWFlat` answers 10^6 in under a millisecond at >0.99 recall@10; both from one
well-kept library that also keeps every vector (`reconstruct`), so a stored clip or video is its own query.

Scores are cosine similarities: vectors are L2-normalised when the index is built and queries when they are asked.

An index directory holds
    index.json     version, kind (flat | hnsw), dim, count, the features it was built from and their model and window
                   settings (the API checks them before it embeds an uploaded query)
    vectors.faiss  the faiss index; vector i is row i of clips.parquet
    clips.parquet  the features' rows without the feature: video_id, uri, clip_id, start_frame, end_frame, fps, label
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from videomae import features, storage

INDEX_VERSION = 1
INDEX_JSON, VECTORS, CLIPS = "index.json", "vectors.faiss", "clips.parquet"
KINDS = ("auto", "flat", "hnsw")
AUTO_HNSW_FROM = 200_000  # `auto`: exact search below this many vectors, HNSW from it (docs/extract.md, scale table)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 128, 64


def _faiss():
    # Imported when an index is used: the rest of the library does not need it. Its loader logs every SIMD build it
    # tries at INFO (current wheels dispatch at run time, so the "could not load" lines are noise).
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss

    return faiss


def normalized(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32, C-contiguous (what faiss takes)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def make_faiss_index(vectors: np.ndarray, kind: str = "auto", threads: int = 0):
    """A faiss inner-product index over unit vectors: exact (`flat`) or HNSW (M=32, efConstruction=128)."""
    faiss = _faiss()
    if threads:
        faiss.omp_set_num_threads(threads)
    n, dim = vectors.shape
    if kind == "auto":
        kind = "hnsw" if n >= AUTO_HNSW_FROM else "flat"
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        raise ValueError(f"index kind must be one of {KINDS}, not {kind!r}")
    index.add(vectors)
    return index, kind


@dataclass(frozen=True)
class Hit:
    row: int
    score: float


class SearchIndex:
    """A loaded index: `search(queries, k)`, and the vectors of stored clips and videos as queries."""

    def __init__(self, index, clips: pa.Table, meta: dict):
        self.index, self.meta = index, meta
        self.clips = clips
        self.video_ids = np.asarray(clips["video_id"].to_pylist(), dtype=object)
        self._row_of_clip = {c: i for i, c in enumerate(clips["clip_id"].to_pylist())}
        self._rows_of_video: dict[str, list[int]] = {}
        for i, v in enumerate(self.video_ids):
            self._rows_of_video.setdefault(v, []).append(i)

    # ------------------------------------------------------------------------------------------- build, load
    @classmethod
    def build(cls, features_dir: str, out_dir: str | None = None, kind: str = "auto", threads: int = 0,
              options: storage.Options = None, out_options: storage.Options = None) -> SearchIndex:
        """Index every feature row of `features_dir`; written to `out_dir` when given."""
        table = features.read_features(features_dir, options=options)
        if len(table) == 0:
            raise ValueError(f"{features_dir}: no feature rows to index (run trainer/extract.py first)")
        self = cls.from_table(table, kind, threads, features.read_manifest(features_dir, options) or {})
        self.meta["features"] = features_dir
        if out_dir is not None:
            self.save(out_dir, out_options)
        return self

    @classmethod
    def from_table(cls, table: pa.Table, kind: str = "auto", threads: int = 0, manifest: dict | None = None
                   ) -> SearchIndex:
        """Index feature rows (FEATURES_SCHEMA); `manifest`: the features' manifest (model, windows)."""
        manifest = manifest or {}
        started = time.perf_counter()
        vectors = normalized(features.feature_matrix(table))
        index, kind = make_faiss_index(vectors, kind, threads)
        meta = {"version": INDEX_VERSION, "library": "faiss", "kind": kind, "metric": "cosine",
                "dim": int(vectors.shape[1]), "count": int(len(vectors)), "features": None,
                "model": manifest.get("model"), "windows": manifest.get("windows"),
                "settings_digest": manifest.get("settings_digest"),
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "build_s": round(time.perf_counter() - started, 3)}
        return cls(index, table.drop(["feature"]), meta)

    def save(self, out_dir: str, options: storage.Options = None) -> None:
        faiss = _faiss()
        buf = io.BytesIO()
        pq.write_table(self.clips, buf)
        storage.write_bytes(storage.join(out_dir, CLIPS), buf.getvalue(), options)
        storage.write_bytes(storage.join(out_dir, VECTORS), faiss.serialize_index(self.index).tobytes(), options)
        # Written last: an index directory with index.json is complete.
        storage.write_text(storage.join(out_dir, INDEX_JSON), json.dumps(self.meta, indent=2) + "\n", options)

    @classmethod
    def load(cls, index_dir: str, options: storage.Options = None) -> SearchIndex:
        faiss = _faiss()
        text = storage.read_text_or_none(storage.join(index_dir, INDEX_JSON), options)
        if text is None:
            raise FileNotFoundError(f"{index_dir}: no {INDEX_JSON} (build one with python trainer/search.py build)")
        meta = json.loads(text)
        if meta.get("version") != INDEX_VERSION:
            raise ValueError(f"{index_dir}: index version {meta.get('version')}, this code reads {INDEX_VERSION}")
        raw = np.frombuffer(storage.read_bytes(storage.join(index_dir, VECTORS), options), dtype=np.uint8)
        index = faiss.deserialize_index(raw)
        with storage.open_file(storage.join(index_dir, CLIPS), "rb", options) as fh:
            clips = pq.read_table(fh)
        if index.ntotal != len(clips) or index.d != meta["dim"]:
            raise ValueError(f"{index_dir}: {index.ntotal} vectors of {index.d} for {len(clips)} rows of "
                             f"{meta['dim']}: the files do not belong together")
        return cls(index, clips, meta)

    # ------------------------------------------------------------------------------------------- queries
    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def __len__(self) -> int:
        return len(self.clips)

    def has_clip(self, clip_id: str) -> bool:
        return clip_id in self._row_of_clip

    def has_video(self, video_id: str) -> bool:
        return video_id in self._rows_of_video

    def video_size(self, video_id: str) -> int:
        return len(self._rows_of_video[video_id])

    def clip_vector(self, clip_id: str) -> np.ndarray:
        """The stored (unit) vector of a clip. KeyError when the index has no such clip."""
        return self.index.reconstruct(self._row_of_clip[clip_id])

    def video_vector(self, video_id: str) -> np.ndarray:
        """The mean of a video's clip vectors, as a unit vector. KeyError when the index has no such video."""
        rows = self._rows_of_video[video_id]
        return normalized(np.stack([self.index.reconstruct(r) for r in rows]).mean(0, keepdims=True))[0]

    def clip_row(self, clip_id: str) -> dict:
        return self.clips.slice(self._row_of_clip[clip_id], 1).to_pylist()[0]

    def search(self, queries: np.ndarray, k: int, exclude_videos: list[str | None] | None = None
               ) -> list[list[Hit]]:
        """The k nearest stored clips of each query row (cosine, best first), leaving out the clips of
        `exclude_videos[i]` for query i (a stored query's own video)."""
        q = normalized(np.atleast_2d(queries))
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} dimensions; the index has {self.dim}")
        exclude = exclude_videos or [None] * len(q)
        extra = max((len(self._rows_of_video.get(v, ())) for v in exclude if v), default=0)
        fetch = min(k + extra, len(self))
        if hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = max(HNSW_EF_SEARCH, fetch)
        scores, rows = self.index.search(q, fetch)
        out = []
        for qi in range(len(q)):
            hits = [Hit(int(r), float(s)) for r, s in zip(rows[qi], scores[qi], strict=True)
                    if r >= 0 and (exclude[qi] is None or self.video_ids[r] != exclude[qi])]
            out.append(hits[:k])
        return out

    def describe(self, hit: Hit) -> dict:
        """A hit as the API and the CLI give it: the clip's row, its place in seconds, and the score."""
        row = self.clips.slice(hit.row, 1).to_pylist()[0]
        fps = row.get("fps") or 0.0
        return {"video_id": row["video_id"], "uri": row["uri"], "clip_id": row["clip_id"],
                "start_frame": row["start_frame"], "end_frame": row["end_frame"],
                "start_s": round(row["start_frame"] / fps, 3) if fps else None,
                "end_s": round((row["end_frame"] + 1) / fps, 3) if fps else None,
                "score": round(hit.score, 6), "label": row.get("label")}
