"""Step tables, the last: videos/duplicates/rejects tables, labels.json and manifest.json, and the count of where
every input ended. manifest.json is written last: its presence marks a complete dataset."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ingest import report
from ingest.records import VideoRecord
from ingest.step import Context, Records
from ingest.steps import write
from videomae import shards


def _video_row(r: VideoRecord) -> dict:
    return {name: getattr(r, name) for name in shards.VIDEOS_SCHEMA.names}


def _duplicate_row(r: VideoRecord) -> dict:
    return {"video_id": r.video_id, "kept_video_id": r.duplicate_of, "kind": r.duplicate_kind,
            "distance": float(r.duplicate_distance), "uri": r.uri, "source": r.source, "split": r.split}


def tables_step(records: Records, ctx: Context) -> Records:
    """Write the tables and the manifest (`ctx.facts["manifest"]`; its "counts" hold the per-source summary)."""
    cfg = ctx.cfg
    failed = {r.video_id: r for r in records if r.part is not None and not r.ok}  # rejected at the clips step
    for rec in records:
        if rec.ok and rec.duplicate_of in failed:
            # The survivor failed at the clip stage; its copies are not silently kept in its place.
            survivor = failed[rec.duplicate_of]
            rec.reject(survivor.reason, f"kept copy {rec.duplicate_of} was rejected at the clips step "
                                        f"({survivor.reason})")
    kept = sorted((r for r in records if r.kept), key=lambda r: r.video_id)
    duplicates = sorted((r for r in records if r.ok and not r.kept), key=lambda r: r.video_id)
    rejects = sorted(({"uri": r.uri, "source": r.source, "reason": r.reason, "detail": r.detail}
                      for r in records if not r.ok), key=lambda x: (x["source"], x["uri"]))
    num_parts = ctx.facts.get("num_parts", 0)
    write.remove_stale_parts(cfg.output, num_parts, cfg.storage_options)
    write.write_table(cfg, "videos.parquet", [_video_row(r) for r in kept], shards.VIDEOS_SCHEMA)
    write.write_table(cfg, "duplicates.parquet", [_duplicate_row(r) for r in duplicates], shards.DUPLICATES_SCHEMA)
    write.write_table(cfg, "rejects.parquet", rejects, shards.REJECTS_SCHEMA)
    labels = ctx.facts["labels"]
    write.write_json(cfg, "labels.json", labels.to_json())
    manifest = {
        "version": shards.FORMAT_VERSION,
        "config_digest": cfg.digest,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.time() - ctx.started, 3),
        "counts": report.count_outcomes(records, [s.name for s in cfg.sources]),
        "dedupe": ctx.facts.get("dedupe", {}),
        "num_parts": num_parts,
        "clips": cfg.clips.model_dump(),
        "sources": {
            s.name: {"kind": s.kind, "path": cfg.path_of(s), "weight": s.weight, "stride": cfg.stride_for(s),
                     "num_classes": len(labels.sources.get(s.name, {}).get("classes", []))}
            for s in cfg.sources
        },
    }
    write.write_json(cfg, "manifest.json", manifest)  # last: its presence marks a complete dataset
    ctx.facts["manifest"] = manifest
    return records
