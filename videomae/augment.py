"""Training augmentation for clips: the reference's multi-scale crop, flips, RandAugment, multi-view test crops.

Clips here are float (3, T, H, W) in [0, 1] (before `normalize`), or uint8 (T, H, W, 3) frames for RandAugment. Every
random choice comes from an explicit `numpy.random.Generator`, so a sample's augmentation follows from its seed, not
from which process decoded it.

- `multi_scale_box`: OpenGVLab/VideoMAEv2 `dataset/transforms.py` GroupMultiScaleCrop (scales 1, .875, .75, .66 of the
  short side, width and height scales at most one step apart, 13 fixed offsets), one box for all frames, resized to
  the input size (bilinear, as the reference).
- `rand_augment`: timm's RandAugment applied with the same ops and magnitudes to every frame (the reference's
  `dataset/rand_augment.py` does the same by transforming a frame list at once).
- `train_frames`: the whole training transform on uint8 pixels (what the data path ships; the worker normalises).
  The reference's fine-tuning uses a random-resized crop (scale .08-1) plus random erasing; we use the multi-scale
  crop for both stages (one crop family, documented in docs/training.md).
- `spatial_crops`: 1 or 3 crops along the long side for multi-view testing (the reference's test_num_crop=3).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from videomae.transforms import normalize, resize_clip_short_side, to_tensor

MULTI_SCALES = (1.0, 0.875, 0.75, 0.66)


def _fixed_offsets(h: int, w: int, ch: int, cw: int) -> list[tuple[int, int]]:
    """(top, left) of the reference's 13 fixed crop positions: corners, centre, edge centres, quarter points."""
    hs, ws = (h - ch) // 4, (w - cw) // 4
    grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
    return [(i * hs, j * ws) for i, j in grid]


def multi_scale_box(h: int, w: int, size: int, rng: np.random.Generator, scales: Sequence[float] = MULTI_SCALES,
                    max_distort: int = 1) -> tuple[int, int, int, int]:
    """One crop box (top, left, height, width) in an h x w frame, as GroupMultiScaleCrop draws it."""
    base = min(h, w)
    sizes = [int(base * s) for s in scales]
    # Sizes within 3 px of the input size snap to it (the reference does this to avoid a needless resize).
    snapped = [size if abs(s - size) < 3 else s for s in sizes]
    pairs = [(ch, cw) for i, ch in enumerate(snapped) for j, cw in enumerate(snapped) if abs(i - j) <= max_distort]
    ch, cw = pairs[int(rng.integers(len(pairs)))]
    ch, cw = min(ch, h), min(cw, w)
    offsets = _fixed_offsets(h, w, ch, cw)
    top, left = offsets[int(rng.integers(len(offsets)))]
    return top, left, ch, cw


def crop_resize(clip: torch.Tensor, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """(3, T, H, W) -> the box, resized to (3, T, size, size) (bilinear)."""
    top, left, ch, cw = box
    x = clip[:, :, top:top + ch, left:left + cw]  # (3, T, ch, cw)
    if (ch, cw) == (size, size):
        return x.contiguous()
    x = F.interpolate(x.transpose(0, 1), size=(size, size), mode="bilinear", align_corners=False)  # (T, 3, S, S)
    return x.transpose(0, 1).contiguous()  # (3, T, S, S)


def rand_augment(frames: np.ndarray, spec: str, rng: np.random.Generator) -> np.ndarray:
    """timm RandAugment (`spec`, e.g. 'rand-m7-n4-mstd0.5-inc1') on uint8 (T, H, W, 3), the same draw for each frame.

    timm draws ops from Python's and numpy's global generators; we seed both from `rng` before every frame (so all
    frames get identical ops and magnitudes) and restore their states afterwards."""
    from PIL import Image
    from timm.data.auto_augment import rand_augment_transform

    transform = rand_augment_transform(spec, {"translate_const": int(min(frames.shape[1:3]) * 0.45),
                                              "img_mean": (124, 116, 104)})
    seed = int(rng.integers(2**31))
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        out = []
        for f in frames:
            random.seed(seed)
            np.random.seed(seed)
            out.append(np.asarray(transform(Image.fromarray(f))))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return np.stack(out)  # (T, H, W, 3)


def crop_resize_frames(frames: np.ndarray, box: tuple[int, int, int, int], size: int,
                       out: np.ndarray | None = None) -> np.ndarray:
    """uint8 (T, H, W, 3) -> the box, resized to uint8 (T, size, size, 3): bilinear, half-pixel centres, no
    antialiasing (torch's uint8 kernel, the same sampling as `crop_resize` on floats, rounded: within one level).
    `out`: a C-contiguous uint8 (T, size, size, 3) array to write into (a decode batch's slot), which spares two
    copies of the view (the box made contiguous, the result copied into place): the kernel reads the box where it
    lies and writes the slot; the same pixels either way (tests/videomae/test_augment.py)."""
    top, left, ch, cw = box
    x = frames[:, top:top + ch, left:left + cw]
    if out is None:
        out = np.empty((x.shape[0], size, size, 3), dtype=np.uint8)
    if (ch, cw) == (size, size):
        out[...] = x
        return out
    t = torch.from_numpy(x).permute(0, 3, 1, 2)  # (T, 3, ch, cw) view, channels-last in memory
    # interpolate's own kernel (F.interpolate calls it), with its out= form: the result lands in `out`'s memory.
    torch._C._nn.upsample_bilinear2d(t, (size, size), False, None, None, out=torch.from_numpy(out).permute(0, 3, 1, 2))
    return out


def train_frames(frames: np.ndarray, size: int, rng: np.random.Generator, scales: Sequence[float] = MULTI_SCALES,
                 flip: bool = False, rand_aug: str | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """The training transform up to the pixels: [RandAugment] -> multi-scale crop -> [flip], uint8 (T, H, W, 3) ->
    uint8 (T, size, size, 3). What the data path ships to a training worker; the worker's device makes the model
    input (`videomae.transforms.frames_to_input`: float, channels first, normalised).

    The random draws are those of the float transform this replaced (RandAugment's seed, the box, the flip, in
    that order), so a seed gives the same crop, flip and, drawn next from the same generator, the same masks; the
    pixels are that transform's rounded to uint8 (tests/videomae/test_augment.py checks both). `out`: where to write
    them (`crop_resize_frames`)."""
    if rand_aug:
        frames = rand_augment(frames, rand_aug, rng)
    _, h, w, _ = frames.shape
    return crop_flip_frames(frames, multi_scale_box(h, w, size, rng, scales), size, rng, flip, out)


def crop_flip_frames(frames: np.ndarray, box: tuple[int, int, int, int], size: int, rng: np.random.Generator,
                     flip: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """`train_frames` after its box is drawn: the box resized (`crop_resize_frames`), then the flip drawn from `rng`.
    A caller that draws the box itself (`multi_scale_box` on the frame size, from the same generator) and decodes
    only what the box needs passes the decoded part with the box shifted into it: the same pixels and draws."""
    out = crop_resize_frames(frames, box, size, out)
    if flip and rng.random() < 0.5:
        out[...] = out[:, :, ::-1].copy()
    return out


def spatial_crops(frames: np.ndarray, size: int, num_crops: int) -> list[torch.Tensor]:
    """Multi-view test crops: short side -> size, then 1 (centre) or 3 (start, centre, end of the long side) crops
    of size x size, each normalised (3, T, size, size). The reference's test loader does the same with test_num_crop."""
    clip = resize_clip_short_side(to_tensor(frames), size)  # (3, T, H', W')
    _, _, h, w = clip.shape
    long = max(h, w)
    starts = [(long - size) // 2] if num_crops == 1 else [0, (long - size) // 2, long - size]
    crops = []
    for s in starts:
        box = (s, (w - size) // 2, size, size) if h >= w else ((h - size) // 2, s, size, size)
        crops.append(normalize(crop_resize(clip, box, size)))
    return crops
