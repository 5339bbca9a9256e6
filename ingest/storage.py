"""Files by URI: local paths and any fsspec/pyarrow filesystem (s3://, gs://, file://, memory://).

Decoders (ffprobe, decord, PyAV) need a real file; `local_file` yields the path itself for local inputs and a
temporary download otherwise. Outputs are written to a temporary name and renamed, so a reader (or a rerun
after a crash) never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import fsspec
import fsspec.core

GLOB_CHARS = "*?["


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def protocol_prefix(uri: str) -> str:
    return uri.split("://", 1)[0] + "://" if "://" in uri and not uri.startswith("file://") else ""


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def is_glob(path: str) -> bool:
    return any(c in path for c in GLOB_CHARS)


@contextmanager
def local_file(uri: str) -> Iterator[str]:
    """A local path holding the bytes of `uri` for as long as the context lasts."""
    if "://" not in uri or uri.startswith("file://"):
        yield uri[len("file://") :] if uri.startswith("file://") else uri
        return
    fs, path = filesystem(uri)
    suffix = os.path.splitext(path)[1]
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        local = os.path.join(tmp, "input" + suffix)
        fs.get(path, local)
        yield local


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_bytes_atomic(uri: str, data: bytes) -> None:
    fs, path = filesystem(uri)
    fs.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with fs.open(tmp, "wb") as f:
        f.write(data)
    fs.mv(tmp, path)


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.exists(path)
