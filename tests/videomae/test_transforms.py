"""Clip transforms shared by training, evaluation and the API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videomae.transforms import clip_indices, eval_clip, normalize, sliding_windows, to_tensor, to_uint8_frames


def test_eval_clip_shape_and_round_trip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 32, 48, 3), dtype=np.uint8)  # (T, H, W, 3), short side 32 already
    clip = eval_clip(frames, 32)
    assert clip.shape == (3, 6, 32, 32) and clip.dtype == torch.float32
    # No resize needed: the center crop (columns 8..40) comes back exactly through to_uint8_frames.
    assert np.array_equal(to_uint8_frames(clip), frames[:, :, 8:40])
    small = eval_clip(rng.integers(0, 256, (2, 90, 60, 3), dtype=np.uint8), 30)  # shrink: short side 60 -> 30
    assert small.shape == (3, 2, 30, 30)


def test_normalize_uses_imagenet_stats():
    x = to_tensor(np.full((1, 2, 2, 3), 255, dtype=np.uint8))  # white
    torch.testing.assert_close(normalize(x)[:, 0, 0, 0], torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224,
                                                                         (1 - 0.406) / 0.225]))
    with pytest.raises(ValueError, match="T, H, W, 3"):
        to_tensor(np.zeros((2, 4, 4), dtype=np.uint8))


def test_clip_indices_and_windows():
    assert clip_indices(total_frames=100, clip_len=4, stride=3, start=10) == [10, 13, 16, 19]
    assert clip_indices(total_frames=5, clip_len=4, stride=2) == [0, 2, 4, 4]  # short video: the last frame repeats
    starts = sliding_windows(40, 8, 2, window_stride=10)  # a clip spans 15 frames
    assert starts == [0, 10, 20] and starts[-1] + 15 <= 40
    assert sliding_windows(5, 8, 2, 4) == [0]
