"""The driver-side stages between the per-video steps, with no Ray in them:

prepare  (after fingerprint): merge labels, dedupe, split the kept videos into parts;
finalize (after the parts are written): fold in clip-stage failures, write the tables, labels.json and
          manifest.json, and count where every input ended.

`run_local` chains every step in one process (tests, debugging: `python -m ingest --no-ray`); ingest/pipeline.py
runs the same steps as a Ray Data graph.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ingest import report
from ingest.config import IngestConfig
from ingest.dedupe import DedupeResult, find_duplicates
from ingest.labels import LabelSpace, merge_labels
from ingest.records import DECODE_ERROR, VideoRecord
from ingest.steps import write
from ingest.steps.fingerprint import fingerprint_record
from ingest.steps.listing import list_inputs
from ingest.steps.probe import probe_record
from videomae import shards

log = logging.getLogger(__name__)


@dataclass
class Plan:
    records: list[VideoRecord]  # every input, in listing order
    labels: LabelSpace
    dedupe: DedupeResult
    parts: list[list[VideoRecord]] = field(default_factory=list)


def prepare(records: list[VideoRecord], cfg: IngestConfig) -> Plan:
    labels = merge_labels(records, cfg)
    ok = [r for r in records if r.ok]
    result = find_duplicates(ok, cfg.dedupe)
    kept_ids = set(result.kept)
    kept = sorted((r for r in ok if r.video_id in kept_ids), key=lambda r: r.video_id)
    n = cfg.ray.videos_per_part
    parts = [kept[i : i + n] for i in range(0, len(kept), n)]
    log.info(
        "dedupe: %d ok -> %d kept, %d exact, %d near (%d train/val leaks); %d candidate pairs; %d parts",
        len(ok),
        len(kept),
        result.stats.get("exact", 0),
        result.stats.get("near", 0),
        result.stats.get("leaks", 0),
        result.stats.get("candidates", 0),
        len(parts),
    )
    return Plan(records, labels, result, parts)


def _video_row(r: VideoRecord) -> dict:
    return {
        "video_id": r.video_id,
        "uri": r.uri,
        "source": r.source,
        "split": r.split,
        "label": r.label,
        "duration_s": r.duration_s,
        "fps": r.fps,
        "num_frames": r.num_frames,
        "width": r.width,
        "height": r.height,
        "codec": r.codec,
        "sha256": r.sha256,
        "signature": r.signature,
    }


def finalize(plan: Plan, part_results: list[dict], cfg: IngestConfig, started: float) -> dict:
    """Write the tables and manifest; returns the manifest (its "counts" hold the per-source summary)."""
    by_id = {r.video_id: r for r in plan.records}
    clips_per_video: dict[str, int] = {}
    for res in part_results:
        clips_per_video.update(res["clips_per_video"])
        for rej in res["rejects"]:
            by_id[rej["video_id"]].reject(rej["reason"], rej["detail"])
    failed = {r.video_id for r in plan.records if r.reason == DECODE_ERROR}
    duplicates = []
    for row in plan.dedupe.duplicates:
        if row["kept_video_id"] in failed:
            # The survivor failed to decode at the clip stage; its copies are not silently kept in its place.
            by_id[row["video_id"]].reject(DECODE_ERROR, f"kept copy {row['kept_video_id']} failed to decode")
        else:
            duplicates.append(row)
    dup_ids = {row["video_id"] for row in duplicates}
    kept_ids = {v for v in plan.dedupe.kept if v not in failed}
    kept = sorted((by_id[v] for v in kept_ids), key=lambda r: r.video_id)
    rejects = sorted(
        ({"uri": r.uri, "source": r.source, "reason": r.reason, "detail": r.detail} for r in plan.records if not r.ok),
        key=lambda x: (x["source"], x["uri"]),
    )
    out = cfg.output
    write.remove_stale_parts(out, len(plan.parts))
    write.write_table(out, "videos.parquet", [_video_row(r) for r in kept], shards.VIDEOS_SCHEMA)
    write.write_table(out, "duplicates.parquet", duplicates, shards.DUPLICATES_SCHEMA)
    write.write_table(out, "rejects.parquet", rejects, shards.REJECTS_SCHEMA)
    write.write_json(out, "labels.json", plan.labels.to_json())
    counts = report.count_outcomes(plan.records, kept_ids, dup_ids, clips_per_video, [s.name for s in cfg.sources])
    manifest = {
        "version": shards.FORMAT_VERSION,
        "config_digest": cfg.digest,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(time.time() - started, 3),
        "counts": counts,
        "dedupe": plan.dedupe.stats,
        "num_parts": len(plan.parts),
        "clips": cfg.clips.model_dump(),
        "sources": {
            s.name: {
                "kind": s.kind,
                "path": s.path,
                "weight": s.weight,
                "stride": cfg.stride_for(s),
                "num_classes": len(plan.labels.sources.get(s.name, {}).get("classes", [])),
            }
            for s in cfg.sources
        },
    }
    write.write_json(out, "manifest.json", manifest)  # last: its presence marks a complete dataset
    return manifest


def run_local(cfg: IngestConfig) -> dict:
    """Every step in this process, in order (no Ray)."""
    started = time.time()
    records = list_inputs(cfg)
    records = [fingerprint_record(probe_record(r, cfg), cfg) for r in records]
    plan = prepare(records, cfg)
    results = [write.write_part(i, part, cfg) for i, part in enumerate(plan.parts)]
    return finalize(plan, results, cfg, started)
