"""Clip preprocessing shared by training, evaluation and the API (one code path, so served features match).

Frames come in as uint8 (T, H, W, 3) arrays or tensors; clips leave as float (3, T, H, W) normalised with the
ImageNet mean/std, the layout the model takes after a batch dimension is added.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from videomae.targets import IMAGENET_MEAN, IMAGENET_STD


def to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (3, T, H, W) in [0, 1]."""
    x = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {tuple(x.shape)}")
    return x.permute(3, 0, 1, 2).float().div_(255.0)  # (3, T, H, W)


def normalize(clip: torch.Tensor) -> torch.Tensor:
    """[0, 1] (3, T, H, W) -> ImageNet-normalised."""
    mean = clip.new_tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = clip.new_tensor(IMAGENET_STD).view(3, 1, 1, 1)
    return (clip - mean) / std


def to_uint8_frames(clip: torch.Tensor) -> np.ndarray:
    """ImageNet-normalised (3, T, H, W) -> uint8 (T, H, W, 3), for pictures."""
    mean = clip.new_tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = clip.new_tensor(IMAGENET_STD).view(3, 1, 1, 1)
    x = (clip.float() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def resize_short_side(clip: torch.Tensor, size: int) -> torch.Tensor:
    """(3, T, H, W) -> short side = size, aspect kept (bilinear, antialiased when shrinking)."""
    _, _, h, w = clip.shape
    if min(h, w) == size:
        return clip
    scale = size / min(h, w)
    new_hw = (max(size, round(h * scale)), max(size, round(w * scale)))
    out = F.interpolate(clip.transpose(0, 1), size=new_hw, mode="bilinear", align_corners=False,
                        antialias=scale < 1)  # (T, 3, H', W')
    return out.transpose(0, 1)  # (3, T, H', W')


def center_crop(clip: torch.Tensor, size: int) -> torch.Tensor:
    _, _, h, w = clip.shape
    if h < size or w < size:
        raise ValueError(f"cannot center-crop {size}x{size} from {h}x{w}")
    top, left = (h - size) // 2, (w - size) // 2
    return clip[:, :, top:top + size, left:left + size]


def eval_clip(frames: np.ndarray | torch.Tensor, img_size: int) -> torch.Tensor:
    """The evaluation / serving transform: short side -> img_size, center crop, normalise. (3, T, S, S)."""
    return normalize(center_crop(resize_short_side(to_tensor(frames), img_size), img_size))


def clip_indices(num_frames_total: int, clip_len: int, stride: int, start: int = 0) -> np.ndarray:
    """Frame indices of one clip: `clip_len` frames every `stride` from `start`, clamped to the last frame
    (short videos repeat their last frame, as the reference's loaders do)."""
    if num_frames_total <= 0:
        raise ValueError("the video has no frames")
    idx = start + stride * np.arange(clip_len)
    return np.minimum(idx, num_frames_total - 1)


def sliding_windows(num_frames_total: int, clip_len: int, stride: int, window_stride: int) -> list[int]:
    """Start frames of sliding clips covering a video (at least one clip, even for short videos)."""
    span = (clip_len - 1) * stride + 1
    last = max(num_frames_total - span, 0)
    starts = list(range(0, last + 1, max(window_stride, 1)))
    return starts or [0]
