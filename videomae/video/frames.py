"""Frame helpers: which frames a clip takes (`clip_indices`, the one definition; `frame_indices_at_times`), and
the frame transforms the clip shards store (`resize_frames_short_side`, `encode_jpeg`, `decode_jpeg(s)`), all on
uint8 numpy frames (the tensor transforms of model input are videomae/transforms.py)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import simplejpeg
from PIL import Image


def frame_indices_at_times(times_s: Sequence[float], fps: float, num_frames: int) -> list[int]:
    """Index of the frame shown at each time, clipped to the video; times beyond the end are dropped."""
    out = []
    for t in times_s:
        i = int(np.floor(t * fps + 1e-6))
        if i < num_frames:
            out.append(i)
    return out


def clip_indices(*, clip_len: int, stride: int = 1, start: int = 0, total_frames: int | None = None) -> list[int]:
    """Frame indices of one clip: `clip_len` frames `stride` apart from `start` (the reference's sampling).

    Clamping: with `total_frames`, indices past the last frame (total_frames - 1) become the last frame, so a
    short video repeats its last frame as the reference's loaders do (the API's windows). Without it nothing is
    clamped: the caller has made sure the clip fits (ingest starts clips only where they fit).
    Keyword-only, because the two helpers this replaces took the same numbers in different orders.
    """
    if clip_len < 1 or stride < 1 or start < 0:
        raise ValueError(f"need clip_len >= 1, stride >= 1, start >= 0; got {clip_len}, {stride}, {start}")
    idx = [start + k * stride for k in range(clip_len)]
    if total_frames is None:
        return idx
    if total_frames <= 0:
        raise ValueError("the video has no frames")
    return [min(i, total_frames - 1) for i in idx]


def resize_frames_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    """Resize (T, H, W, 3) or (H, W, 3) so that min(H, W) == short_side, keeping the aspect (bilinear).

    Sizes are rounded to even numbers so that downstream codecs and 2x2 patch grids see whole pixels.
    """
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    h, w = batch.shape[1:3]
    scale = short_side / min(h, w)
    nh, nw = (
        (short_side, max(2, int(round(w * scale / 2)) * 2))
        if h <= w
        else (
            max(2, int(round(h * scale / 2)) * 2),
            short_side,
        )
    )
    if (nh, nw) == (h, w):
        return frames
    out = np.stack([np.asarray(Image.fromarray(f).resize((nw, nh), Image.BILINEAR)) for f in batch])
    return out[0] if single else out


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """One (H, W, 3) uint8 frame as JPEG bytes. Fixed encoder settings keep the bytes reproducible."""
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes back to (H, W, 3) uint8 RGB.

    simplejpeg (libjpeg-turbo's TurboJPEG API, the GIL released while it decodes) with its default accurate settings
    (islow DCT, fancy upsampling) gives the same pixels as Pillow's decoder, which is built on the same library, at
    about 0.6x its time (bench/loader.py); Pillow stays as the fallback for what simplejpeg refuses (CMYK, 12-bit)."""
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB")
    except ValueError:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))


def decode_jpegs(frames: Sequence[bytes]) -> np.ndarray:
    """A clip's JPEG frames to (T, H, W, 3) uint8, each decoded straight into its slot of one array (no per-frame
    array to copy and free: ~15% of the decode at 16 x 256 px, bench/loader.py)."""
    first = decode_jpeg(frames[0])
    out = np.empty((len(frames), *first.shape), dtype=np.uint8)
    out[0] = first
    h, w = first.shape[:2]
    for i, f in enumerate(frames[1:], 1):
        try:
            same = simplejpeg.decode_jpeg_header(f)[:2] == (h, w)
        except ValueError:
            same = False
        if same:
            try:
                simplejpeg.decode_jpeg(f, colorspace="RGB", buffer=out[i])
                continue
            except ValueError:
                pass
        frame = decode_jpeg(f)
        if frame.shape != first.shape:
            raise ValueError(f"frame {i} of a clip is {frame.shape[:2]}, frame 0 is {first.shape[:2]}")
        out[i] = frame
    return out
