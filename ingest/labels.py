"""Label spaces: normalise names, apply per-source aliases, merge identical names across labeled sources.

This is how K710 was built from K400/K600/K700 (VideoMAE V2, Sec. 4.1): a class present in several sources
under the same name is one merged class. labels.json keeps, per source, its local classes (sorted, as
written) and the merged index of each, so a head trained on the merged space can be projected back onto
any source's classes (`to_merged[local_index]` selects the logit).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ingest.config import SOURCE_KINDS, IngestConfig
from ingest.records import VideoRecord
from ingest.step import Context, Records

_SEP = re.compile(r"[\s_\-]+")


def normalise(name: str) -> str:
    """Case, separators and surrounding space do not make a new class: 'Moving_Left ' == 'moving left'."""
    return _SEP.sub(" ", name.strip().lower()).strip()


@dataclass
class LabelSpace:
    names: list[str]  # merged class names, sorted
    sources: dict[str, dict] = field(default_factory=dict)  # name -> {"classes": [...], "to_merged": [...]}

    def index(self, source: str, local_name: str) -> int:
        s = self.sources[source]
        return s["to_merged"][s["classes"].index(local_name)]

    def to_json(self) -> dict:
        return {"names": self.names, "num_classes": len(self.names), "sources": self.sources}


def merged_name(local_name: str, aliases: dict[str, str]) -> str:
    norm = normalise(local_name)
    table = {normalise(k): normalise(v) for k, v in aliases.items()}
    return table.get(norm, norm)


def merge_labels(records: list[VideoRecord], cfg: IngestConfig) -> LabelSpace:
    """Build the merged space from the label names of `records` (labeled sources only) and set `rec.label`.

    Every record of a labeled source counts, kept or not, so the class list does not depend on which copy of
    a duplicated video survived (and reruns after adding inputs keep indices where names stay the same).
    """
    local: dict[str, set[str]] = {s.name: set() for s in cfg.sources if SOURCE_KINDS[s.kind].labeled}
    for r in records:
        if SOURCE_KINDS[r.kind].labeled and r.label_name is not None:
            local[r.source].add(r.label_name)
    aliases = {s.name: s.aliases for s in cfg.sources}
    names = sorted({merged_name(n, aliases[src]) for src, ns in local.items() for n in ns})
    position = {n: i for i, n in enumerate(names)}
    space = LabelSpace(names=names)
    for src, ns in local.items():
        classes = sorted(ns)
        space.sources[src] = {
            "classes": classes,
            "to_merged": [position[merged_name(n, aliases[src])] for n in classes],
        }
    for r in records:
        if SOURCE_KINDS[r.kind].labeled and r.label_name is not None:
            r.label = position[merged_name(r.label_name, aliases[r.source])]
    return space


def label_step(records: Records, ctx: Context) -> Records:
    """Step labels: the merged space (for labels.json) and every labeled record's merged index."""
    ctx.facts["labels"] = merge_labels(records, ctx.cfg)
    return records
