"""What an ingest step is: `run(records, ctx) -> records` over the one record type, and a scope (docs/ingest.md).

A step gives back every record it gets, updated or rejected with a reason. Its scope says which records one call
sees, and so how a runner may split the work: `video` (each record on its own: any grouping, any process), `part`
(the kept videos of one part together; records without a part pass by) or `dataset` (every record, on the driver).
The config is validated once, on the driver; the `Context` holding it travels to tasks as it is. Dataset steps
leave what the manifest needs in `ctx.facts`. The step list is `ingest.steps.STEPS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ingest.config import IngestConfig
from ingest.records import VideoRecord

Scope = Literal["video", "part", "dataset"]
Records = list[VideoRecord]


def local_map(name: str, fn: Callable[[Any], Any], items: list) -> list:
    """Run a dataset step's tasks in this process (`Context.map_tasks` of `run_local`)."""
    return [fn(x) for x in items]


@dataclass
class Context:
    cfg: IngestConfig
    started: float = 0.0  # time.time() when the run began
    facts: dict[str, Any] = field(default_factory=dict)  # labels, dedupe counts, parts, manifest: dataset steps
    # How a dataset step runs its own tasks (dedupe's stages): map_tasks(name, fn, items) -> [fn(x) for x in items],
    # in this process or as Ray tasks (ingest.pipeline); the tasks pass files, not records, between them.
    map_tasks: Callable[[str, Callable[[Any], Any], list], list] = local_map


@dataclass(frozen=True)
class Step:
    name: str
    scope: Scope
    run: Callable[[Records, Context], Records]


def each(fn: Callable[[VideoRecord, IngestConfig], VideoRecord]) -> Callable[[Records, Context], Records]:
    """A per-record function (`probe_record(rec, cfg)`) as a step's `run`."""

    def run(records: Records, ctx: Context) -> Records:
        return [fn(r, ctx.cfg) for r in records]

    return run
