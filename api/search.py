"""/v1/search: the clips of the search index nearest to a query (an uploaded video, a stored clip or a stored video).

An uploaded query is embedded exactly as /v1/embed embeds it (`embed_video`, the same windows the index's features
were extracted with), then its windows' mean (or the one window at `start_frame`) is the query. A stored query is a
vector the index already holds. The lookup itself is the `search` operation, run on the model thread like every
model operation, queries of concurrent requests batched into one index call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from api.embedding import embed_video
from api.engine import Model, ModelHost, operation
from api.errors import ApiError
from api.preprocess import clip_at, probe_upload
from api.schemas import EmbedOptions, IndexInfo, SearchHit, SearchOptions, SearchQueryInfo, SearchResponse
from videomae.search import Hit, SearchIndex
from videomae.video.windows import clip_span, fitting_windows


@dataclass(frozen=True)
class SearchQuery:
    index: SearchIndex
    vector: np.ndarray  # (C,)
    k: int
    exclude_video: str | None = None


@operation("search")
def search_batch(_: Model, queries: list[SearchQuery]) -> list[list[Hit]]:
    """One index call for a batch of queries (the host has one index; k is each query's own)."""
    index = queries[0].index
    hits = index.search(np.stack([q.vector for q in queries]), max(q.k for q in queries),
                        [q.exclude_video for q in queries])
    return [h[:q.k] for h, q in zip(hits, queries, strict=True)]


def require_index(host: ModelHost) -> SearchIndex:
    if host.index is None:
        raise ApiError(409, "no_index", "this server has no search index: build one with `python trainer/search.py "
                                        "build` and start the server with VIDEOMAE_INDEX set to it")
    return host.index


def index_info(host: ModelHost) -> IndexInfo:
    """What the served index holds and was built from, as its index.json records it (`GET /v1/index`)."""
    index = require_index(host)
    meta = index.meta
    model = meta.get("model") or {}
    return IndexInfo(clips=len(index), videos=len(set(index.video_ids)), kind=str(meta.get("kind")),
                     metric=str(meta.get("metric", "cosine")), dim=index.dim, built_at=meta.get("built_at"),
                     features=meta.get("features"), model_source=model.get("source"), model_preset=model.get("preset"),
                     model_type=model.get("model_type"), windows=meta.get("windows") or {},
                     made_by_served_model=host.index_matches_model)


def _check_upload_comparable(host: ModelHost, index: SearchIndex) -> dict:
    """The index's window settings, if an upload embedded by this server is comparable with its features."""
    windows = index.meta.get("windows") or {}
    if not host.index_matches_model:
        raise ApiError(409, "index_model_mismatch", "the index's features were made by other weights than the served "
                                                    "model's: query it by clip_id or video_id, or serve that model")
    if windows.get("transform", "eval") != "eval" or windows.get("img_size", host.cfg.img_size) != host.cfg.img_size:
        raise ApiError(409, "index_transform_mismatch",
                       f"the index's features used the {windows.get('transform')!r} transform at "
                       f"{windows.get('img_size')} px; this server embeds uploads with 'eval' at {host.cfg.img_size} "
                       "px: query it by clip_id or video_id")
    return windows


async def _upload_vector(host: ModelHost, index: SearchIndex, path: Path, opts: SearchOptions
                         ) -> tuple[np.ndarray, int]:
    w = _check_upload_comparable(host, index)
    clip_len, frame_stride = int(w.get("clip_len") or host.cfg.num_frames), int(w.get("frame_stride") or 1)
    info, reader = await host.offload(probe_upload, path, host.settings)
    if opts.start_frame is not None:  # the one window from there; 422 when it runs past the frames that decode
        _, clip = await host.offload(clip_at, reader, opts.start_frame, clip_len, frame_stride, host.cfg.img_size,
                                     host.settings)
        shape = (3, clip_len, host.cfg.img_size, host.cfg.img_size)
        return (await host.run("embed", [clip], shape))[0].numpy(), 1
    # The index's window stride, widened where the upload would need more windows than max_clips allows (the mean
    # of fewer windows of the same video is nearly the same query).
    span = clip_span(clip_len, frame_stride)
    stride = int(w.get("window_stride") or span)
    needed = max(info.num_frames - span, 0) // stride + 1
    if needed > host.settings.max_clips:
        stride = math.ceil(max(info.num_frames - span, 1) / max(host.settings.max_clips - 1, 1))
    body = await embed_video(host, path, EmbedOptions(clip_len=clip_len, frame_stride=frame_stride,
                                                      window_stride=stride, include_clips=False))
    # The windows the vector is the mean of: those within the frames that decoded (embed drops any beyond them).
    return torch.tensor(body.embedding).numpy(), len(fitting_windows(body.num_frames, clip_len, frame_stride, stride))


async def search_upload(host: ModelHost, path: Path, opts: SearchOptions) -> SearchResponse:
    index = require_index(host)
    vector, windows = await _upload_vector(host, index, path, opts)
    hits = (await host.run("search", [SearchQuery(index, vector, opts.k)], "search"))[0]
    return _response(index, hits, SearchQueryInfo(kind="upload", windows=windows))


async def search_stored(host: ModelHost, opts: SearchOptions) -> SearchResponse:
    index = require_index(host)
    if opts.clip_id is not None:
        if not index.has_clip(opts.clip_id):
            raise ApiError(404, "unknown_clip", "the index has no clip with this clip_id")
        vector, video = index.clip_vector(opts.clip_id), index.clip_row(opts.clip_id)["video_id"]
        info = SearchQueryInfo(kind="clip", id=opts.clip_id, windows=1)
    else:
        if not index.has_video(opts.video_id):
            raise ApiError(404, "unknown_video", "the index has no video with this video_id")
        vector, video = index.video_vector(opts.video_id), opts.video_id
        info = SearchQueryInfo(kind="video", id=opts.video_id, windows=index.video_size(opts.video_id))
    query = SearchQuery(index, vector, opts.k, video if opts.exclude_query_video else None)
    hits = (await host.run("search", [query], "search"))[0]
    return _response(index, hits, info)


def _response(index: SearchIndex, hits: list[Hit], query: SearchQueryInfo) -> SearchResponse:
    return SearchResponse(query=query, results=[SearchHit(**index.describe(h)) for h in hits], index_size=len(index))
