"""The Ray Data runner: `ingest.steps.STEPS` as a Ray Data graph (the only ingest module that imports Ray).

    list (driver) -> probe+fingerprint (tasks) -> labels (driver) -> dedupe (driver writes signature blocks; its
                  stages run as tasks over files) -> parts (driver) -> clips (one task per part) -> tables (driver)

`ingest.steps.walk` decides what runs where; this module only maps groups of records over Ray tasks: the records
travel as they are (pickled), with the validated config beside them, never as dicts or JSON. Per-video work runs as
plain Ray tasks (function UDFs, the default task pool), so nothing holds CPUs between stages: on a small machine an
actor pool beside a running trainer can deadlock. The driver holds only metadata and signatures (about 3 KB per
video), never frames.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import ray

from ingest.config import IngestConfig
from ingest.step import Context, Records
from ingest.steps import walk

log = logging.getLogger(__name__)


def init_ray(cfg: IngestConfig) -> None:
    """Join RAY_ADDRESS's cluster if set (also what `ray job submit` sets), else start Ray in this process."""
    # Ray Data's progress bars only where a person watches a terminal; a log (a job, CI, `> file`) gets the plain
    # progress lines this module writes.
    ray.data.DataContext.get_current().enable_progress_bars = sys.stderr.isatty()
    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=False, log_to_driver=False)
    log.info("ray: %s CPUs", ray.cluster_resources().get("CPU"))


def _blocks(cfg: IngestConfig) -> int:
    if cfg.ray.blocks:
        return cfg.ray.blocks
    return 4 * int(ray.cluster_resources().get("CPU", 1))  # a few blocks per CPU: balance without per-row overhead


def _map_groups(name: str, run: Callable[[Records, Context], Records], groups: list[Records], ctx: Context
                ) -> list[Records]:
    """`run` over every group as Ray tasks (one group per row); the groups' records back, logging progress."""
    ds = ray.data.from_items([{"records": g} for g in groups], override_num_blocks=len(groups))
    ds = ds.map(lambda row: {"records": run(list(row["records"]), ctx)})
    total, done, last = sum(len(g) for g in groups), [], time.time()
    for i, row in enumerate(ds.iter_rows(), start=1):
        done.append(list(row["records"]))
        if i % max(1, len(groups) // 10) == 0 or i == len(groups) or time.time() - last > 30:
            log.info("%s: %d/%d", name, sum(len(g) for g in done), total)
            last = time.time()
    reused = sum(1 for g in done if g and g[0].part_reused)
    if reused:
        log.info("%s: %d of %d parts already complete from an earlier run, kept as they are", name, reused, len(done))
    return done


@ray.remote(num_cpus=1)
def _task(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


def map_tasks(name: str, fn: Callable[[Any], Any], items: list) -> list:
    """A dataset step's own tasks (dedupe's stages) as plain Ray tasks: they pass files, so only small results come
    back here; in item order, logging progress."""
    refs = [_task.remote(fn, x) for x in items]
    pending, last = list(refs), time.time()
    while pending:
        _, pending = ray.wait(pending, num_returns=1, timeout=30)
        if time.time() - last > 30 or not pending:
            log.info("%s: %d/%d tasks", name, len(refs) - len(pending), len(refs))
            last = time.time()
    return ray.get(refs)


def run(cfg: IngestConfig) -> dict:
    """Run the whole ingest on Ray; returns the manifest (its "counts" are the per-source summary)."""
    started = time.time()
    init_ray(cfg)
    manifest = walk(Context(cfg, started=started, map_tasks=map_tasks), _map_groups, video_groups=_blocks(cfg))
    log.info("done in %.1f s: %s", time.time() - started, cfg.output)
    return manifest
