"""Steps parts and clips: the kept videos, split into parts, each part's clips written as clips/part-NNNNN.parquet;
and the writers of the tables and JSON files (the tables step, ingest/steps/tables.py, uses them).

Parts are resumable: each clips/part-NNNNN.parquet carries in its metadata the config digest, a digest of
the video ids it holds and the rejects it produced. A rerun skips a part whose metadata matches, so an
interrupted job rerun to completion neither repeats nor loses rows. Files are written to a temporary name
and renamed; manifest.json is written last and marks a finished dataset.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq

from ingest.config import IngestConfig
from ingest.records import VideoRecord
from ingest.step import Context, Records
from ingest.steps.clips import make_clips
from ingest.steps.probe import clip_span, set_length, too_short_detail
from videomae import shards, storage, video
from videomae.reasons import DECODE_ERROR, TOO_SHORT

log = logging.getLogger(__name__)

META_KEY = b"videomae.ingest"


def part_uri(output: str, index: int) -> str:
    return storage.join(output, "clips", f"part-{index:05d}.parquet")


def _videos_digest(records: list[VideoRecord]) -> str:
    # Labels and content are part of what a part holds: a relabeled or replaced input invalidates the part.
    lines = sorted(f"{r.video_id} {r.sha256} {r.split} {r.label}" for r in records)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def _table_bytes(table: pa.Table, metadata: dict | None = None, row_group_rows: int = 256) -> bytes:
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(metadata)})
    buf = io.BytesIO()
    # Fixed writer settings: reruns must give byte-identical rows (and, here, files).
    pq.write_table(table, buf, compression="zstd", row_group_size=row_group_rows, write_statistics=False)
    return buf.getvalue()


def read_part_meta(uri: str, options: storage.Options = None) -> dict | None:
    if not storage.exists(uri, options):
        return None
    try:
        with storage.open_file(uri, "rb", options) as f:
            meta = pq.read_schema(f).metadata or {}
        return json.loads(meta[META_KEY]) if META_KEY in meta else None
    except Exception:  # a torn or foreign file: treat as absent and rewrite
        return None


def write_part(index: int, records: list[VideoRecord], cfg: IngestConfig) -> dict:
    """Decode and write one part. Returns {"part", "clips", "clips_per_video", "rejects", "lengths", "skipped"}:
    `lengths` holds [num_frames, duration_s, fps] of videos found shorter than recorded here (a decode counted them),
    so a rerun that reuses the part restores them."""
    uri = part_uri(cfg.output, index)
    expect = {"digest": cfg.digest, "videos": _videos_digest(records)}
    meta = read_part_meta(uri, cfg.storage_options)
    if meta and all(meta.get(k) == v for k, v in expect.items()):
        return {**meta["result"], "skipped": True}
    rows, rejects, per_video, lengths = [], [], {}, {}
    for rec in sorted(records, key=lambda r: r.video_id):
        counted = rec.frames_counted
        try:
            clips = make_clips(rec, cfg)
        except video.VideoError as e:
            rejects.append({"video_id": rec.video_id, "reason": DECODE_ERROR, "detail": e.detail[:500]})
            continue
        if rec.frames_counted and not counted:
            lengths[rec.video_id] = [rec.num_frames, rec.duration_s, rec.fps]
        if not clips:
            span = clip_span(cfg.clips.num_frames, cfg.stride_for(cfg.source(rec.source)))
            rejects.append({"video_id": rec.video_id, "reason": TOO_SHORT, "detail": too_short_detail(rec, span)})
            continue
        per_video[rec.video_id] = len(clips)
        rows.extend(clips)
    rows.sort(key=lambda r: r["clip_id"])
    table = pa.Table.from_pylist(rows, schema=shards.CLIPS_SCHEMA)
    result = {"part": index, "clips": len(rows), "clips_per_video": per_video, "rejects": rejects, "lengths": lengths}
    storage.write_bytes(uri, _table_bytes(table, {**expect, "result": result}, cfg.clips.row_group_rows),
                        cfg.storage_options)
    return {**result, "skipped": False}


def parts_step(records: Records, ctx: Context) -> Records:
    """The kept videos in video_id order, `ray.videos_per_part` to a part (one task each): `rec.part`."""
    kept = sorted((r for r in records if r.kept), key=lambda r: r.video_id)
    n = ctx.cfg.ray.videos_per_part
    for i, rec in enumerate(kept):
        rec.part = i // n
    ctx.facts["num_parts"] = -(-len(kept) // n)
    return records


def clips_step(records: Records, ctx: Context) -> Records:
    """Write one part (the records that share `part`); each record gains its clip count, the length a decode here
    found (if it differs from the probe's), or a reject (decode_error, too_short)."""
    result = write_part(records[0].part, records, ctx.cfg)
    failed = {r["video_id"]: r for r in result["rejects"]}
    lengths = result.get("lengths", {})
    for rec in records:
        rec.clips, rec.part_reused = result["clips_per_video"].get(rec.video_id, 0), result["skipped"]
        if rec.video_id in lengths:
            set_length(rec, video.Length(*lengths[rec.video_id], counted=True))
        if rec.video_id in failed:
            rec.reject(failed[rec.video_id]["reason"], failed[rec.video_id]["detail"])
    return records


def remove_stale_parts(output: str, num_parts: int, options: storage.Options = None) -> int:
    """Delete parts beyond the current plan (left by an earlier run over more inputs)."""
    clips = storage.join(output, "clips")
    if not storage.exists(clips, options):
        return 0
    stale = [p for p in storage.glob(f"{clips}/part-*.parquet", options)
             if int(p.rsplit("-", 1)[1].split(".")[0]) >= num_parts]
    for p in stale:
        storage.remove(p, options)
    return len(stale)


def write_table(cfg: IngestConfig, name: str, rows: list[dict], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    storage.write_bytes(storage.join(cfg.output, name), _table_bytes(table), cfg.storage_options)


def write_json(cfg: IngestConfig, name: str, payload: dict) -> None:
    data = json.dumps(payload, indent=2, sort_keys=True).encode()
    storage.write_bytes(storage.join(cfg.output, name), data, cfg.storage_options)
