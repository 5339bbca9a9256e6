"""Decode only a box of a clip's JPEG frames: the part a training crop reads.

A multi-scale training crop of a 256 x 454 frame is at most 256 x 256 and often ~170 x 170, yet decoding the whole
frame pays the inverse DCT, chroma upsampling and colour conversion for every pixel. libjpeg-turbo's libjpeg API can
skip both: `jpeg_crop_scanline` decodes only the iMCU columns that hold the box, `jpeg_skip_scanlines` skips the rows
above it (the entropy-coded data is still read: it cannot be skipped). `_jpegbox.c` wraps that for a whole clip in
one call (ctypes releases the GIL for it); `pip install` builds it when a C compiler and libjpeg's headers are there
(setup.py: an optional extension, Debian's `libjpeg62-turbo-dev`, which scripts/setup.sh installs).

The contract: the same pixels as decoding the whole frame (islow DCT, fancy upsampling: what `decode_jpegs` does)
and slicing the box (tests/videomae/test_jpegbox.py checks it on real frames, every chroma layout we write and grey).
When the library is not built, or a clip's frames are anything it refuses (CMYK, corrupt data: libjpeg's warnings
count as errors here), `decode_box` returns None and callers decode whole frames as before: a slower path, never
other pixels. `VIDEOMAE_JPEGBOX=0` turns it off (benchmarks compare both ways)."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_MSG = 200  # libjpeg's JMSG_LENGTH_MAX
_lib: ctypes.CDLL | None = None
_loaded = False


def _load() -> ctypes.CDLL | None:
    global _lib, _loaded
    if _loaded:
        return _lib
    _loaded = True
    if os.environ.get("VIDEOMAE_JPEGBOX", "1") == "0":
        return None
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"_jpegbox{suffix}"
        if path.exists():
            try:
                lib = ctypes.CDLL(str(path))
            except OSError:  # built, but its libjpeg is missing here
                return None
            lib.jb_size.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_int),
                                    ctypes.POINTER(ctypes.c_int), ctypes.c_char_p]
            lib.jb_decode.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_ulong), ctypes.c_int,
                                      ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                      ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p]
            _lib = lib
            return lib
    return None


def available() -> bool:
    """Whether box decoding is built and on (else `decode_box` always returns None)."""
    return _load() is not None


@contextlib.contextmanager
def disabled():
    """Box decoding off in this process while the block runs (benchmarks: whole frames as the baseline)."""
    global _lib, _loaded
    saved = _load(), _loaded
    _lib, _loaded = None, True
    try:
        yield
    finally:
        _lib, _loaded = saved


def frame_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's header; None when box decoding is unavailable or the header is unreadable."""
    lib = _load()
    if lib is None:
        return None
    h, w, msg = ctypes.c_int(), ctypes.c_int(), ctypes.create_string_buffer(_MSG)
    if lib.jb_size(data, len(data), ctypes.byref(h), ctypes.byref(w), msg) != 0:
        return None
    return h.value, w.value


def decode_box(frames: Sequence[bytes], size: tuple[int, int], box: tuple[int, int, int, int],
               out: np.ndarray | None = None) -> np.ndarray | None:
    """Frames (each `size` = (height, width)) -> their pixels in `box` = (top, left, height, width): uint8
    (T, box height, box width, 3) RGB, into `out` when given (C-contiguous, that shape). None when box decoding is
    unavailable or any frame is one it refuses; then decode whole frames instead (`decode_jpegs`)."""
    lib = _load()
    if lib is None:
        return None
    top, left, bh, bw = box
    n = len(frames)
    if out is None:
        out = np.empty((n, bh, bw, 3), dtype=np.uint8)
    elif out.shape != (n, bh, bw, 3) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous uint8 {(n, bh, bw, 3)}, got {out.dtype} {out.shape}")
    datas = (ctypes.c_char_p * n)(*frames)
    sizes = (ctypes.c_ulong * n)(*(len(f) for f in frames))
    row = np.empty(size[1] * 3, dtype=np.uint8)
    msg = ctypes.create_string_buffer(_MSG)
    rc = lib.jb_decode(datas, sizes, n, size[0], size[1], top, left, bh, bw, out.ctypes.data, row.ctypes.data, msg)
    return out if rc == 0 else None
