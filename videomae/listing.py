"""Which videos a location holds and what they are called: the listing and the ids that ingest and feature
extraction share, so the same input gets the same `video_id` (and the same clip ids) in the shards, the features
and the search index.

- `list_files(location, extensions, options)`: (uri, key) for a directory (recursive) or a glob; the key is the
  path relative to the non-glob root; hidden files and partial downloads are skipped.
- `read_manifest(uri, options)`: the rows of a CSV/JSONL manifest (`uri` required; `label`, `split` optional), read
  by `MANIFEST_READERS` (file suffix -> rows).
- `make_video_id(source, key)`, `make_clip_id(video_id, start_frame, stride)`: the stable ids.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath

from videomae import storage


def make_video_id(source: str, key: str) -> str:
    """Stable id from source name + the input's key (its path relative to the source root, or the manifest uri).

    Derived from identity, not bytes: two byte-identical inputs stay two records (one kept, one duplicate),
    and moving the whole data root does not change ids.
    """
    return hashlib.sha256(f"{source}\0{key}".encode()).hexdigest()[:16]


def make_clip_id(video_id: str, start_frame: int, stride: int) -> str:
    """Stable, readable clip id: video, first frame, stride."""
    return f"{video_id}-{start_frame:06d}-s{stride}"


def _jsonl_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


MANIFEST_READERS = {
    ".csv": lambda text: list(csv.DictReader(io.StringIO(text))),
    ".jsonl": _jsonl_rows,
    ".json": _jsonl_rows,
}


def is_manifest(location: str) -> bool:
    return location.lower().endswith(tuple(MANIFEST_READERS))


def read_manifest(uri: str, options: storage.Options = None) -> list[dict]:
    """The rows of a CSV/JSONL manifest; every row needs a `uri` (ValueError naming the row otherwise)."""
    rows = MANIFEST_READERS[posixpath.splitext(uri.lower())[1]](storage.read_text(uri, options))
    for i, row in enumerate(rows):
        if not row.get("uri"):
            raise ValueError(f"{uri}: row {i + 1} has no 'uri' (columns: uri, label, split)")
    return rows


def manifest_base(uri: str, options: storage.Options = None) -> str:
    """The directory a manifest's relative `uri`s are relative to (its own)."""
    _, path = storage.filesystem(uri, options)
    return storage.protocol_prefix(uri) + posixpath.dirname(path)


def list_files(location: str, extensions: list[str] | tuple[str, ...] = (), options: storage.Options = None
               ) -> list[tuple[str, str]]:
    """(uri, key) of every file in a directory (recursively) or matching a glob, sorted by uri; `extensions` (with
    or without the dot; empty = every file) filters by suffix. FileNotFoundError when a non-glob location is not a
    directory."""
    _, path = storage.filesystem(location, options)
    prefix = storage.protocol_prefix(location)
    if storage.is_glob(path):
        root = path[: min(path.index(c) for c in storage.GLOB_CHARS if c in path)].rsplit("/", 1)[0]
        found = [p for p in storage.glob(location, options) if storage.file_size(p, options) is not None]
    else:
        if not storage.is_dir(location, options):
            raise FileNotFoundError(f"{location} is not a directory, glob or manifest")
        root = path.rstrip("/")
        found = storage.find(location, options)
    out = []
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    for uri in found:
        rel = posixpath.relpath(uri.removeprefix(prefix), root)
        if any(part.startswith(".") for part in rel.split("/")):
            continue  # hidden files and partial downloads (.foo.mp4.part) are not inputs
        if exts and not uri.lower().endswith(exts):
            continue
        out.append((uri, rel))
    return out
