"""Step list: expand each source (directory, glob, or CSV/JSONL manifest) into records, sorted by key.

Manifest formats are read by `MANIFEST_READERS` (file suffix -> rows with `uri`, `label`, `split`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import posixpath

from ingest.config import SOURCE_KINDS, IngestConfig, Source
from ingest.records import MISSING_LABEL, VideoRecord
from ingest.step import Context, Records
from videomae import storage

log = logging.getLogger(__name__)


def _jsonl_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


MANIFEST_READERS = {
    ".csv": lambda text: list(csv.DictReader(io.StringIO(text))),
    ".jsonl": _jsonl_rows,
    ".json": _jsonl_rows,
}


def _manifest_rows(uri: str, options: storage.Options = None) -> list[dict]:
    rows = MANIFEST_READERS[posixpath.splitext(uri.lower())[1]](storage.read_text(uri, options))
    for i, row in enumerate(rows):
        if not row.get("uri"):
            raise ValueError(f"{uri}: row {i + 1} has no 'uri' (columns: uri, label, split)")
    return rows


def _listed_files(source: Source, location: str) -> list[tuple[str, str]]:
    """(uri, key) for a directory or glob source; key is the path relative to the non-glob root."""
    options = source.storage_options
    _, path = storage.filesystem(location, options)
    prefix = storage.protocol_prefix(location)
    if storage.is_glob(path):
        root = path[: min(path.index(c) for c in storage.GLOB_CHARS if c in path)].rsplit("/", 1)[0]
        found = [p for p in storage.glob(location, options) if storage.is_file(p, options)]
    else:
        if not storage.is_dir(location, options):
            raise FileNotFoundError(f"source {source.name}: {location} is not a directory, glob or manifest")
        root = path.rstrip("/")
        found = storage.find(location, options)
    out = []
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in source.extensions)
    for uri in found:
        rel = posixpath.relpath(uri.removeprefix(prefix), root)
        if any(part.startswith(".") for part in rel.split("/")):
            continue  # hidden files and partial downloads (.foo.mp4.part) are not inputs
        if exts and not uri.lower().endswith(exts):
            continue
        out.append((uri, rel))
    return out


def list_source(source: Source, index: int, location: str | None = None) -> list[VideoRecord]:
    """The source's inputs; `location`: its path resolved against the config's root (default: its path)."""
    location, labeled = location or source.path, SOURCE_KINDS[source.kind].labeled
    records = []
    if location.lower().endswith(tuple(MANIFEST_READERS)):
        _, path = storage.filesystem(location, source.storage_options)
        base = storage.protocol_prefix(location) + posixpath.dirname(path)
        for row in _manifest_rows(location, source.storage_options):
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
        for uri, rel in _listed_files(source, location):
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
