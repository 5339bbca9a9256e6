"""What an ingest step is: `run(records, ctx) -> records` over the one record type, with a scope.

Every step takes records and gives them back, updated or rejected with a reason, never dropped. Its `scope` says
which records one call may see, and so how a runner may split the work:

- `video`: each record on its own (probe, fingerprint): any grouping, in any process;
- `part`: the kept videos of one part together (clips): one call per part; records without a part pass by;
- `dataset`: every record at once, on the driver (list, labels, dedupe, parts, tables): the global decisions, over
  metadata and signatures only, never frames.

The step list is `ingest.steps.STEPS`. The config is validated once, on the driver; the `Context` holding it
travels to tasks as it is. Dataset steps leave what the manifest needs in `ctx.facts`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ingest.config import IngestConfig
from ingest.records import VideoRecord

Scope = Literal["video", "part", "dataset"]
Records = list[VideoRecord]


@dataclass
class Context:
    cfg: IngestConfig
    started: float = 0.0  # time.time() when the run began
    facts: dict[str, Any] = field(default_factory=dict)  # labels, dedupe counts, parts, manifest: dataset steps


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
