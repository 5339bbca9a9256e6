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
other pixels. `VIDEOMAE_JPEGBOX=0` in the environment of the processes that decode (Ray's workers), or `disabled()`
in a process, turns it off (bench/loader.py compares both ways)."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import simplejpeg

_MSG = 200  # libjpeg's JMSG_LENGTH_MAX
_MAX_IMCU = 32  # the widest iMCU libjpeg allows (max_h_samp_factor 4 x 8 px)
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
            lib.jb_decode.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_ulong), ctypes.c_int,
                                      ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                      ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                      ctypes.POINTER(ctypes.c_int), ctypes.c_char_p]
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
    """(height, width) from a JPEG's header (simplejpeg's parser, as `decode_jpegs` reads it); None if unreadable."""
    try:
        return tuple(simplejpeg.decode_jpeg_header(data)[:2])
    except ValueError:
        return None


def decode_box(frames: Sequence[bytes], size: tuple[int, int], box: tuple[int, int, int, int]
               ) -> tuple[np.ndarray, int] | None:
    """Frames (each `size` = (height, width)) -> (pixels, x0): uint8 (T, box height, cols, 3) RGB holding the box's
    rows and the columns [x0, x0 + cols) that libjpeg decoded to cover it (whole iMCUs with a margin: the box is
    `pixels[:, :, left - x0 : left - x0 + width]`; outside it the margin's columns are the decoded window's edge, not
    the whole frame's pixels). libjpeg writes the rows in place, with no copy; the array is a view of a wider buffer.
    None when box decoding is unavailable or any frame is one it refuses; then decode whole frames instead
    (`decode_jpegs`)."""
    lib = _load()
    if lib is None:
        return None
    top, left, bh, bw = box
    n = len(frames)
    stride = min(size[1], bw + 4 * _MAX_IMCU)  # the margin on each side plus the alignment of each end
    buf = np.empty((n, bh, stride, 3), dtype=np.uint8)
    datas = (ctypes.c_char_p * n)(*frames)
    sizes = (ctypes.c_ulong * n)(*(len(f) for f in frames))
    x0, cw, msg = ctypes.c_int(), ctypes.c_int(), ctypes.create_string_buffer(_MSG)
    rc = lib.jb_decode(datas, sizes, n, size[0], size[1], top, left, bh, bw, buf.ctypes.data, stride,
                       ctypes.byref(x0), ctypes.byref(cw), msg)
    if rc != 0:
        return None
    return buf[:, :, :cw.value], x0.value

