"""The training transform on uint8 pixels (`train_frames`, what the data path ships) against the float transform it
replaced: the same random draws (crop box, flip and the masks drawn after them) and pixels within one uint8 level."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videomae.augment import MULTI_SCALES, crop_resize, crop_resize_frames, multi_scale_box, train_frames
from videomae.masks import MaskingConfig, sample_masks
from videomae.transforms import frames_to_input, normalize, to_tensor

MASKS = MaskingConfig(encoder="tube", encoder_ratio=0.9, decoder="running_cell", decoder_ratio=0.5)


def float_transform(frames: np.ndarray, size: int, rng: np.random.Generator, flip: bool) -> torch.Tensor:
    """The definition before uint8 samples: float [0, 1] frames, box, bilinear resize, flip, normalise."""
    clip = to_tensor(frames)
    _, _, h, w = clip.shape
    clip = crop_resize(clip, multi_scale_box(h, w, size, rng, MULTI_SCALES), size)
    if flip and rng.random() < 0.5:
        clip = clip.flip(-1)
    return normalize(clip)


def natural_frames(t: int, h: int, w: int, seed: int) -> np.ndarray:
    """Smooth random frames (edges and gradients, as camera frames have), uint8 (T, H, W, 3)."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(np.cumsum(rng.normal(size=(t, h, w, 3)), axis=1), axis=2)
    x -= x.min(axis=(1, 2), keepdims=True)
    return (255 * x / x.max(axis=(1, 2), keepdims=True)).astype(np.uint8)


@pytest.mark.parametrize(("h", "w", "size"), [(64, 85, 64), (256, 341, 224), (240, 427, 224), (48, 48, 32)])
@pytest.mark.parametrize("flip", [False, True])
def test_uint8_transform_keeps_draws_and_pixels(h: int, w: int, size: int, flip: bool):
    frames = natural_frames(4, h, w, seed=h + w)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1, 1)
    for seed in range(12):
        old_rng, new_rng = np.random.default_rng([seed, 7, 0]), np.random.default_rng([seed, 7, 0])
        old = float_transform(frames, size, old_rng, flip)
        pixels = train_frames(frames, size, new_rng, MULTI_SCALES, flip)
        assert pixels.dtype == np.uint8 and pixels.shape == (4, size, size, 3)
        new = frames_to_input(torch.from_numpy(pixels))
        assert new.shape == old.shape == (3, 4, size, size)
        # Same box and flip: the difference is rounding alone, at most one level of 255 (in [0, 1] units).
        assert float(((new - old) * std).abs().max()) <= 1 / 255 + 1e-5
        # The generators are in the same state: the masks drawn next are identical.
        for a, b in zip(sample_masks(MASKS, (2, size // 16, size // 16), 1, old_rng),
                        sample_masks(MASKS, (2, size // 16, size // 16), 1, new_rng), strict=True):
            assert np.array_equal(a, b)


def test_frames_to_input_is_normalize_of_to_tensor():
    frames = torch.from_numpy(natural_frames(5, 16, 24, seed=2))
    batch = torch.stack([frames, frames.flip(1)])
    out = frames_to_input(batch)
    assert out.shape == (2, 3, 5, 16, 24) and out.dtype == torch.float32
    torch.testing.assert_close(out[0], normalize(to_tensor(frames)), rtol=0, atol=2e-6)
    torch.testing.assert_close(out[1], normalize(to_tensor(frames.flip(1))), rtol=0, atol=2e-6)
    with pytest.raises(ValueError, match="uint8"):
        frames_to_input(batch.float())


@pytest.mark.parametrize("box", [(0, 0, 48, 64), (5, 17, 40, 41), (8, 3, 32, 32), (0, 21, 48, 43)])
def test_crop_resize_into_a_slot_is_interpolate(box: tuple[int, int, int, int]):
    """Writing into a decode batch's slot (the box read where it lies, `out=`) gives F.interpolate's pixels exactly,
    as the copy-then-resize path did; a box of the output size is copied as is."""
    frames = natural_frames(3, 48, 85, seed=sum(box))
    top, left, ch, cw = box
    crop = torch.from_numpy(np.ascontiguousarray(frames[:, top:top + ch, left:left + cw])).permute(0, 3, 1, 2)
    want = torch.nn.functional.interpolate(crop, size=(32, 32), mode="bilinear", align_corners=False,
                                           antialias=False).permute(0, 2, 3, 1).numpy()
    batch = np.zeros((2, 3, 32, 32, 3), dtype=np.uint8)
    got = crop_resize_frames(frames, box, 32, out=batch[1])
    assert got is batch[1] or np.shares_memory(got, batch[1])
    assert np.array_equal(batch[1], want) and not batch[0].any()  # the slot, only the slot
    assert np.array_equal(crop_resize_frames(frames, box, 32), want)  # without a slot: a new array, same pixels
