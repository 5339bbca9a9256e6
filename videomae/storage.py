"""Files by URI: the one module that knows about filesystems (docs/architecture.md "Storage").

A location is a local path, a `file://` URI or any fsspec URI (`s3://`, `gs://`, `memory://`, ...), with optional
`options` for its filesystem (credentials, endpoint, ...: fsspec's `storage_options`), passed along with the path as
datatrove does. Ingest (inputs, shards), the trainer (shards, run directories, checkpoints), the library (model
directories, clip shards) and the API (its model) all go through here.

- Decoders (PyAV, decord, ffprobe) and torch.load need a real file: `local_file` / `local_dir` yield the path itself
  for local inputs and a temporary download otherwise.
- Writes go to a temporary name and are renamed (`write_bytes`), so a reader, or a rerun after a crash, never sees
  half a file.
- A protocol whose fsspec package is not installed (s3fs, gcsfs) falls back to pyarrow's built-in filesystem when no
  options are given, so `s3://` works wherever pyarrow does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import fsspec
import fsspec.core

Options = Mapping[str, Any] | None
GLOB_CHARS = "*?["


# ---------------------------------------------------------------------------------------------- naming
def is_local(uri: str | os.PathLike) -> bool:
    text = os.fspath(uri)
    return "://" not in text or text.startswith("file://")


def local_path(uri: str | os.PathLike) -> Path:
    """The local path of a local location (`file://` stripped)."""
    return Path(os.fspath(uri).removeprefix("file://"))


def protocol_prefix(uri: str) -> str:
    """`s3://` for `s3://bucket/x`; empty for local paths and `file://` (their fs paths are plain paths)."""
    return uri.split("://", 1)[0] + "://" if not is_local(uri) else ""


def join(base: str, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *[p.strip("/") for p in parts]])


def resolve(base: str, path: str) -> str:
    """`path` as it is when absolute or a URI, else relative to `base` (a directory or URI)."""
    if "://" in path or path.startswith("/") or not base:
        return path
    return join(base, path) if "://" in base else posixpath.normpath(posixpath.join(base, path))


def absolute(location: str) -> str:
    """A config's location made independent of the working directory: a local path becomes absolute (`~` expanded),
    resolved against the directory the command runs in; a URI stays as it is. Configs apply this on the driver,
    when they are validated, so a Ray worker or a `ray job submit` entrypoint (each with a working directory of its
    own) reads and writes where the user meant."""
    text = os.fspath(location)
    if not text or not is_local(text):
        return text
    if text.startswith("file://"):
        return "file://" + os.path.abspath(os.path.expanduser(text.removeprefix("file://")))
    return os.path.abspath(os.path.expanduser(text))


def is_glob(path: str) -> bool:
    return any(c in path for c in GLOB_CHARS)


# ---------------------------------------------------------------------------------------------- filesystems
def filesystem(uri: str, options: Options = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path inside it) of a location."""
    try:
        return fsspec.core.url_to_fs(str(uri), **dict(options or {}))
    except ImportError:  # e.g. s3:// without s3fs: pyarrow has its own S3/GCS/HDFS filesystems
        if options:
            raise
        from fsspec.implementations.arrow import ArrowFSWrapper
        from pyarrow import fs as pafs

        arrow, path = pafs.FileSystem.from_uri(str(uri))
        return ArrowFSWrapper(arrow), path


def arrow_filesystem(uri: str, options: Options = None):
    """(pyarrow filesystem, path) of a location, for pyarrow/Ray APIs that take one (Ray Train's storage)."""
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, path = filesystem(uri, options)
    return PyFileSystem(FSSpecHandler(fs)), path


def _uri(fs_path: str, like: str) -> str:
    """A path that `fs.glob`/`fs.find` returned, as a URI of the same protocol as `like`."""
    return protocol_prefix(like) + fs_path


def open_file(uri: str, mode: str = "rb", options: Options = None) -> IO:
    fs, path = filesystem(uri, options)
    return fs.open(path, mode)


def exists(uri: str, options: Options = None) -> bool:
    fs, path = filesystem(uri, options)
    return fs.exists(path)


def is_file(uri: str, options: Options = None) -> bool:
    fs, path = filesystem(uri, options)
    return fs.isfile(path)


def is_dir(uri: str, options: Options = None) -> bool:
    fs, path = filesystem(uri, options)
    return fs.isdir(path)


def file_size(uri: str, options: Options = None) -> int | None:
    """The size of the file at `uri`, None when there is none (absent, or a directory there). Any other failure to
    look (an I/O error, a timeout) raises, where fsspec's `isfile` and `exists` answer False to every error: a storage
    fault must not read as a missing input."""
    fs, path = filesystem(uri, options)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return None
    if info.get("type") != "file":
        return None
    return int(info["size"]) if info.get("size") is not None else int(fs.size(path))


def size(uri: str, options: Options = None) -> int:
    fs, path = filesystem(uri, options)
    return int(fs.size(path))


def _raise_on_error(fs: fsspec.AbstractFileSystem) -> dict:
    """fsspec's generic find and glob walk the tree and leave out, silently, a directory whose listing fails (an I/O
    error, a timeout): a listing short of its files would read as a smaller input. For them, raise every error but
    a missing directory (nothing to list, as before). Filesystems with their own find (object stores: one listing
    call, which raises) take no such argument."""
    return {"on_error": _raise_unless_missing} if getattr(fs.find, "__func__", None) is fsspec.AbstractFileSystem.find \
        else {}


def _raise_unless_missing(error: OSError) -> None:
    if not isinstance(error, FileNotFoundError):
        raise error


def glob(pattern: str, options: Options = None) -> list[str]:
    """URIs matching a glob, sorted. A listing that fails raises."""
    fs, path = filesystem(pattern, options)
    return sorted(_uri(p, pattern) for p in fs.glob(path, **_raise_on_error(fs)))


def find(uri: str, options: Options = None) -> list[str]:
    """Every file below a directory, recursively, as URIs, sorted. A listing that fails raises."""
    fs, path = filesystem(uri, options)
    return sorted(_uri(p, uri) for p in fs.find(path, **_raise_on_error(fs)))


def remove(uri: str, options: Options = None, recursive: bool = False) -> None:
    """Remove a file, or with `recursive` a directory and everything below it. Local paths go through the os
    module: fsspec's local rm asks for the working directory, and an ingest job's driver on the local two-node
    cluster was found without one (its working_dir package gone from under it once tasks had run on the other node
    of the same machine; tests/infra/test_local_topology.py)."""
    if is_local(uri):
        path = local_path(uri)
        if recursive and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return
    fs, path = filesystem(uri, options)
    fs.rm(path, recursive=recursive)


# ---------------------------------------------------------------------------------------------- content
def read_bytes(uri: str, options: Options = None) -> bytes:
    with open_file(uri, "rb", options) as f:
        return f.read()


def read_text(uri: str, options: Options = None) -> str:
    return read_bytes(uri, options).decode()


def read_text_or_none(uri: str, options: Options = None) -> str | None:
    """The file's text, or None when it is absent or cannot be read."""
    try:
        return read_text(uri, options)
    except (FileNotFoundError, OSError):
        return None


def write_bytes(uri: str, data: bytes, options: Options = None) -> None:
    """Write atomically: a temporary name in the same directory, then a rename. A write that fails (a full disk, an
    I/O error) removes its temporary file, whose torn bytes would otherwise stay behind and, on a full disk, keep it
    full, and raises an OSError that names `uri` (the error of a failed write() names no file)."""
    fs, path = filesystem(uri, options)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with fs.open(tmp, "wb") as f:
            f.write(data)
        fs.mv(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            fs.rm(tmp)
        raise OSError(e.errno, f"cannot write {uri}: {e.strerror or e}") from e


def write_text(uri: str, text: str, options: Options = None) -> None:
    write_bytes(uri, text.encode(), options)


def copy_files(src: str, dst: str, src_options: Options = None, dst_options: Options = None) -> None:
    """Copy the files directly inside directory `src` into directory `dst` (created if needed)."""
    fs, path = filesystem(src, src_options)
    for name in fs.ls(path, detail=False):
        if fs.isfile(name):
            write_bytes(join(dst, posixpath.basename(name)), fs.cat_file(name), dst_options)


# ---------------------------------------------------------------------------------------------- local copies
@contextmanager
def local_file(uri: str, options: Options = None) -> Iterator[str]:
    """A local path holding the bytes of `uri` for as long as the context lasts."""
    if is_local(uri):
        yield str(local_path(uri))
        return
    fs, path = filesystem(uri, options)
    with tempfile.TemporaryDirectory(prefix="videomae-") as tmp:
        local = os.path.join(tmp, "input" + os.path.splitext(path)[1])
        fs.get(path, local)
        yield local


@contextmanager
def local_dir(uri: str, names: tuple[str, ...], options: Options = None) -> Iterator[Path]:
    """A local directory holding the files `names` of directory `uri` that exist (relative names, subfolders
    allowed): the directory itself when local, else a temporary download of just those files."""
    if is_local(uri):
        yield local_path(uri)
        return
    fs, path = filesystem(uri, options)
    with tempfile.TemporaryDirectory(prefix="videomae-") as tmp:
        for name in names:
            if fs.isfile(f"{path.rstrip('/')}/{name}"):
                target = Path(tmp) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get(f"{path.rstrip('/')}/{name}", str(target))
        yield Path(tmp)


def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
