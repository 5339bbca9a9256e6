"""The ingest steps as a Ray Data graph (the only module that imports Ray).

    list (driver) -> from_items -> map(probe) -> map(fingerprint) -> [driver: labels, dedupe, plan parts]
                  -> from_items(parts) -> map(write_part: sample clips, decode, resize, JPEG, write parquet)
                  -> [driver: tables, labels.json, manifest.json]

Per-video work runs as plain Ray tasks (function UDFs, the default task pool), so nothing holds CPUs between
stages: on a small machine an actor pool beside a running trainer can deadlock. The driver-side stages hold
only metadata and signatures (about 3 KB per video), never frames.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable

import ray

from ingest import assemble
from ingest.config import IngestConfig
from ingest.records import VideoRecord
from ingest.steps import write
from ingest.steps.fingerprint import fingerprint_record
from ingest.steps.listing import list_inputs
from ingest.steps.probe import probe_record

log = logging.getLogger(__name__)


def init_ray(cfg: IngestConfig) -> None:
    """Join RAY_ADDRESS's cluster if set (also what `ray job submit` sets), else start Ray in this process."""
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=False, log_to_driver=False)
    log.info("ray: %s CPUs", ray.cluster_resources().get("CPU"))


def _blocks(n: int, cfg: IngestConfig) -> int:
    if cfg.ray.blocks:
        return max(1, min(n, cfg.ray.blocks))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(n, 4 * cpus))  # a few blocks per CPU: balance without per-row task overhead


def _with_progress(rows: Iterable[dict], total: int, stage: str) -> list[dict]:
    """Drain a dataset, logging how far it got about every 10% (and at the end)."""
    out, step, last = [], max(1, total // 10), time.time()
    for row in rows:
        out.append(row)
        if len(out) % step == 0 or len(out) == total or time.time() - last > 30:
            log.info("%s: %d/%d", stage, len(out), total)
            last = time.time()
    return out


def _record_step(step: Callable[[VideoRecord, IngestConfig], VideoRecord], cfg_json: str) -> Callable[[dict], dict]:
    # The config travels as JSON: a pydantic model is picklable, but JSON keeps the task payload small and plain.
    def fn(row: dict) -> dict:
        cfg = IngestConfig.model_validate_json(cfg_json)
        return step(VideoRecord.from_row(row), cfg).to_row()

    return fn


def _part_step(cfg_json: str) -> Callable[[dict], dict]:
    def fn(row: dict) -> dict:
        cfg = IngestConfig.model_validate_json(cfg_json)
        records = [VideoRecord.from_row(r) for r in json.loads(row["records"])]
        return {"result": json.dumps(write.write_part(int(row["part"]), records, cfg))}

    return fn


def _part_row(index: int, part: list[VideoRecord]) -> dict:
    # Signatures are not needed to cut clips; leaving them out keeps the task payload small.
    rows = [{k: v for k, v in r.to_row().items() if k != "signature"} for r in part]
    return {"part": index, "records": json.dumps(rows)}


def run(cfg: IngestConfig) -> dict:
    """Run the whole ingest on Ray; returns the manifest (its "counts" are the per-source summary)."""
    started = time.time()
    init_ray(cfg)
    cfg_json = cfg.model_dump_json()
    records = list_inputs(cfg)
    todo = [r for r in records if r.ok]
    done = [r for r in records if not r.ok]  # rejected while listing (labeled rows without labels)
    log.info("list: %d inputs, %d to probe", len(records), len(todo))
    if todo:
        ds = ray.data.from_items([r.to_row() for r in todo], override_num_blocks=_blocks(len(todo), cfg))
        ds = ds.map(_record_step(probe_record, cfg_json)).map(_record_step(fingerprint_record, cfg_json))
        rows = _with_progress(ds.iter_rows(), len(todo), "probe+fingerprint")
        done += [VideoRecord.from_row(r) for r in rows]
    # Back in listing order, so everything downstream sees the same sequence whatever order Ray finished in.
    order = {(r.source, r.key): i for i, r in enumerate(records)}
    done.sort(key=lambda r: order[(r.source, r.key)])
    plan = assemble.prepare(done, cfg)
    results = []
    if plan.parts:
        items = [_part_row(i, p) for i, p in enumerate(plan.parts)]
        ds = ray.data.from_items(items, override_num_blocks=len(items)).map(_part_step(cfg_json))
        results = [json.loads(r["result"]) for r in _with_progress(ds.iter_rows(), len(items), "clips")]
        results.sort(key=lambda r: r["part"])
        skipped = sum(r["skipped"] for r in results)
        if skipped:
            log.info(
                "clips: %d of %d parts already complete from an earlier run, kept as they are", skipped, len(items)
            )
    manifest = assemble.finalize(plan, results, cfg, started)
    log.info("done in %.1f s: %s", time.time() - started, cfg.output)
    return manifest
