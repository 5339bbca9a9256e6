"""Step 1, list: expand each source (directory, glob, or CSV/JSONL manifest) into records, sorted by key."""

from __future__ import annotations

import csv
import io
import json
import logging
import posixpath

from ingest import storage
from ingest.config import IngestConfig, Source
from ingest.records import MISSING_LABEL, VideoRecord

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json")


def _manifest_rows(uri: str) -> list[dict]:
    fs, path = storage.filesystem(uri)
    with fs.open(path, "r") as f:
        text = f.read()
    if path.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    for i, row in enumerate(rows):
        if not row.get("uri"):
            raise ValueError(f"{uri}: row {i + 1} has no 'uri' (columns: uri, label, split)")
    return rows


def _resolve(base_dir: str, uri: str) -> str:
    """Manifest uris may be relative to the manifest's directory, absolute, or full URIs."""
    if "://" in uri or uri.startswith("/"):
        return uri
    return storage.join(base_dir, uri) if "://" in base_dir else posixpath.normpath(posixpath.join(base_dir, uri))


def _listed_files(source: Source) -> list[tuple[str, str]]:
    """(uri, key) for a directory or glob source; key is the path relative to the non-glob root."""
    fs, path = storage.filesystem(source.path)
    prefix = storage.protocol_prefix(source.path)
    if storage.is_glob(path):
        root = path[: min(path.index(c) for c in storage.GLOB_CHARS if c in path)].rsplit("/", 1)[0]
        found = [p for p in fs.glob(path) if fs.isfile(p)]
    else:
        if not fs.isdir(path):
            raise FileNotFoundError(f"source {source.name}: {source.path} is not a directory, glob or manifest")
        root = path.rstrip("/")
        found = fs.find(path)
    out = []
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in source.extensions)
    for p in found:
        rel = posixpath.relpath(p, root)
        if any(part.startswith(".") for part in rel.split("/")):
            continue  # hidden files and partial downloads (.foo.mp4.part) are not inputs
        if exts and not p.lower().endswith(exts):
            continue
        out.append((prefix + p, rel))
    return out


def list_source(source: Source, index: int) -> list[VideoRecord]:
    records = []
    if source.path.lower().endswith(MANIFEST_SUFFIXES):
        fs, path = storage.filesystem(source.path)
        base = storage.protocol_prefix(source.path) + posixpath.dirname(path)
        for row in _manifest_rows(source.path):
            label = row.get("label")
            label = None if label is None or str(label).strip() == "" else str(label)
            rec = VideoRecord(
                uri=_resolve(base, str(row["uri"])),
                source=source.name,
                source_index=index,
                kind=source.kind,
                split=str(row.get("split") or source.split),
                key=str(row["uri"]),
                label_name=label if source.kind == "labeled" else None,
            )
            if source.kind == "labeled" and label is None:
                rec.reject(MISSING_LABEL, "labeled source row without a label")
            records.append(rec)
    else:
        for uri, rel in _listed_files(source):
            records.append(
                VideoRecord(
                    uri=uri, source=source.name, source_index=index, kind=source.kind, split=source.split, key=rel
                )
            )
        if source.kind == "labeled":
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
        recs = list_source(source, i)
        log.info("list: source %s -> %d inputs", source.name, len(recs))
        out.extend(recs)
    return out
