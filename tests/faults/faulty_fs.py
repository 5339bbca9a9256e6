"""An fsspec filesystem that fails: `faulty:///abs/path` is the local file system, except that every Nth write call
writes half of its bytes and raises EIO, and every Nth read call (a file's read(), or info(): a metadata read)
raises EIO (counted across all files; N = 0 never).

Registered under the protocol `faulty` by `install()`; `videomae.storage` reaches it like any other URI, so the jobs
under test run their own storage code unchanged. The counters are class attributes: `FaultyFileSystem.configure(
write_every=3)` before a run, `configure()` to clear the fault.
"""

from __future__ import annotations

import errno

import fsspec
from fsspec.implementations.local import LocalFileOpener, LocalFileSystem


class _FaultyFile(LocalFileOpener):
    def write(self, data):
        fs = FaultyFileSystem
        fs.writes += 1
        if fs.write_every and fs.writes % fs.write_every == 0:
            super().write(bytes(data)[: len(data) // 2])  # a torn write: some bytes reach the file, then the error
            self.flush()
            fs.injected.append(("write", self.path))
            raise OSError(errno.EIO, "injected write fault", self.path)
        return super().write(data)

    def read(self, *args):
        FaultyFileSystem._count_read(self.path)
        return super().read(*args)


class FaultyFileSystem(LocalFileSystem):
    protocol = "faulty"
    root_marker = "/"
    cachable = False
    write_every = 0
    read_every = 0
    writes = 0
    reads = 0
    injected: list[tuple[str, str]] = []

    @classmethod
    def configure(cls, write_every: int = 0, read_every: int = 0) -> None:
        cls.write_every, cls.read_every, cls.writes, cls.reads = write_every, read_every, 0, 0
        cls.injected = []

    @classmethod
    def _strip_protocol(cls, path):
        path = path[len("faulty://"):] if isinstance(path, str) and path.startswith("faulty://") else path
        return super()._strip_protocol(path)

    def _open(self, path, mode="rb", block_size=None, **kwargs):
        path = self._strip_protocol(path)
        if self.auto_mkdir and "w" in mode:
            self.makedirs(self._parent(path), exist_ok=True)
        return _FaultyFile(path, mode, fs=self, **kwargs)

    def info(self, path, **kwargs):
        # A metadata read (an object store's HEAD request) fails like any other read.
        FaultyFileSystem._count_read(self._strip_protocol(path))
        return super().info(path, **kwargs)

    def get_file(self, rpath, lpath, **kwargs):
        # A download goes through read() (LocalFileSystem would copy the file without reading it here).
        with self.open(rpath, "rb") as src, open(lpath, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)

    @classmethod
    def _count_read(cls, path: str) -> None:
        cls.reads += 1
        if cls.read_every and cls.reads % cls.read_every == 0:
            cls.injected.append(("read", path))
            raise OSError(errno.EIO, "injected read fault", path)

    def unstrip_protocol(self, name: str) -> str:
        return "faulty://" + self._strip_protocol(name)


def install() -> None:
    fsspec.register_implementation("faulty", FaultyFileSystem, clobber=True)
