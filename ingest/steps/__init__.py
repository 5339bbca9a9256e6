"""The ingest steps, in order: one list (`STEPS`), and `walk`, which both runners use to go through it:
`run_local` in one process (tests, debugging: `python -m ingest --no-ray`), `ingest.pipeline.run` on Ray Data.
What a step is: ingest/step.py. Steps never import Ray.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from ingest import dedupe_stages, labels
from ingest.config import IngestConfig
from ingest.step import Context, Records, Scope, Step, each
from ingest.steps import fingerprint, listing, probe, tables, write

STEPS: tuple[Step, ...] = (
    Step("list", "dataset", listing.list_step),  # sources -> one record per input, sorted by key
    Step("probe", "video", each(probe.probe_record)),  # exists, size, container facts, long enough for a clip
    Step("fingerprint", "video", each(fingerprint.fingerprint_record)),  # sha256, signature, decodes to the end
    Step("labels", "dataset", labels.label_step),  # the merged label space; each record's merged label
    Step("dedupe", "dataset", dedupe_stages.dedupe_step),  # exact and near copies, train/val leaks (staged tasks)
    Step("parts", "dataset", write.parts_step),  # kept videos -> parts of `ray.videos_per_part`
    Step("clips", "part", write.clips_step),  # sample, decode, resize, JPEG; write the part (resumable)
    Step("tables", "dataset", tables.tables_step),  # videos/duplicates/rejects, labels.json, manifest.json (last)
)


# ---------------------------------------------------------------------------------------------- walking the list
MapGroups = Callable[[str, Callable[[Records, Context], Records], list[Records], Context], list[Records]]


def walk(ctx: Context, map_groups: MapGroups, video_groups: int = 1) -> dict:
    """Run STEPS in order; returns the manifest. Dataset steps run here; a run of consecutive `video` steps, or a
    `part` step, goes to `map_groups(name, run, groups, ctx)`, which applies `run` to every group (in this process,
    or as Ray tasks) and returns the groups' records. Rejected records, and records without a part, stay here."""
    records: Records = []
    for scope, steps in _stages(STEPS):
        if scope == "dataset":
            for step in steps:
                records = step.run(records, ctx)
            continue
        todo = [r for r in records if r.ok and (scope == "video" or r.part is not None)]
        rest = [r for r in records if not (r.ok and (scope == "video" or r.part is not None))]
        groups = _chunks(todo, video_groups) if scope == "video" else _by_part(todo)
        done = map_groups("+".join(s.name for s in steps), functools.partial(_run_steps, steps), groups, ctx) \
            if groups else []
        # Back in listing order (config order, then key), whatever order the groups finished in.
        records = sorted([*rest, *(r for g in done for r in g)], key=lambda r: (r.source_index, r.key))
    return ctx.facts["manifest"]


def run_local(cfg: IngestConfig) -> dict:
    """The whole ingest in this process; returns the manifest (its "counts" are the per-source summary)."""
    return walk(Context(cfg, started=time.time()), lambda name, run, groups, ctx: [run(g, ctx) for g in groups])


def _stages(steps: tuple[Step, ...]) -> list[tuple[Scope, list[Step]]]:
    """Consecutive `video` steps run together on each record (one task); every other step is its own stage."""
    out: list[tuple[Scope, list[Step]]] = []
    for step in steps:
        if out and step.scope == "video" and out[-1][0] == "video":
            out[-1][1].append(step)
        else:
            out.append((step.scope, [step]))
    return out


def _run_steps(steps: list[Step], records: Records, ctx: Context) -> Records:
    for step in steps:
        records = step.run(records, ctx)
    return records


def _chunks(records: Records, n: int) -> list[Records]:
    size = -(-len(records) // max(1, n))
    return [records[i:i + size] for i in range(0, len(records), size)] if records else []


def _by_part(records: Records) -> list[Records]:
    parts: dict[int, Records] = {}
    for r in records:
        parts.setdefault(r.part, []).append(r)
    return [parts[p] for p in sorted(parts)]
