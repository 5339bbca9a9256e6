"""Step list: expand each source (directory, glob, or CSV/JSONL manifest) into records, sorted by key.

Directories, globs and manifests are read by `videomae.listing` (shared with feature extraction, so both name an
input alike); manifest formats are its `MANIFEST_READERS` (file suffix -> rows with `uri`, `label`, `split`).
"""

from __future__ import annotations

import logging

from ingest.config import SOURCE_KINDS, IngestConfig, Source
from ingest.records import VideoRecord
from ingest.step import Context, Records
from videomae import listing, storage
from videomae.listing import MANIFEST_READERS  # noqa: F401 (the manifest formats, re-exported where docs name them)
from videomae.reasons import MISSING_LABEL

log = logging.getLogger(__name__)


def list_source(source: Source, index: int, location: str | None = None) -> list[VideoRecord]:
    """The source's inputs; `location`: its path resolved against the config's root (default: its path)."""
    location, labeled = location or source.path, SOURCE_KINDS[source.kind].labeled
    records = []
    if listing.is_manifest(location):
        base = listing.manifest_base(location, source.storage_options)
        for row in listing.read_manifest(location, source.storage_options):
            label = row.get("label")
            label = None if label is None or str(label).strip() == "" else str(label)
            rec = VideoRecord(
                uri=storage.resolve(base, str(row["uri"])),
                source=source.name,
                source_index=index,
                kind=source.kind,
                split=str(row.get("split") or source.split),
                key=str(row["uri"]),
                label_name=label if labeled else None,
            )
            if labeled and label is None:
                rec.reject(MISSING_LABEL, "labeled source row without a label")
            records.append(rec)
    else:
        try:
            found = listing.list_files(location, source.extensions, source.storage_options)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"source {source.name}: {e}") from None
        for uri, rel in found:
            records.append(
                VideoRecord(
                    uri=uri, source=source.name, source_index=index, kind=source.kind, split=source.split, key=rel
                )
            )
        if labeled:
            # A directory cannot carry labels; say so rather than inventing them from folder names.
            for rec in records:
                rec.reject(MISSING_LABEL, "labeled sources need a manifest (uri, label, split)")
    # The same key listed twice (a repeated manifest row) is one input, not two.
    seen: dict[str, VideoRecord] = {}
    for rec in records:
        seen.setdefault(rec.key, rec)
    if len(seen) < len(records):
        log.warning("source %s: %d repeated rows ignored", source.name, len(records) - len(seen))
    return sorted(seen.values(), key=lambda r: r.key)


def list_inputs(cfg: IngestConfig) -> list[VideoRecord]:
    """Every input of every source, in config order then key order."""
    out = []
    for i, source in enumerate(cfg.sources):
        recs = list_source(source, i, cfg.path_of(source))
        log.info("list: source %s -> %d inputs", source.name, len(recs))
        out.extend(recs)
    return out


def list_step(records: Records, ctx: Context) -> Records:
    """The first step: the records it is given (none) and every input of the config's sources."""
    return [*records, *list_inputs(ctx.cfg)]
