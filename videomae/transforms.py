"""Clip preprocessing shared by training, evaluation and the API (one code path, so served features match).

Frames come in as uint8 (T, H, W, 3) arrays or tensors; clips leave as float (3, T, H, W) normalised with the
ImageNet mean/std, the layout the model takes after a batch dimension is added.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from videomae.targets import IMAGENET_MEAN, IMAGENET_STD

# The one definition of a clip's frame indices lives in videomae/video/frames.py (keyword-only; clamps to the last frame
# only when total_frames is given); re-exported here, where the API and tests used to find it.
from videomae.video.frames import clip_indices as clip_indices


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


def frames_to_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., T, H, W, 3) -> model input (..., 3, T, H, W) float32, normalised: `normalize(to_tensor(x))`
    for a batch, in one pass on the frames' device (the training worker's: only uint8 crosses into it)."""
    if frames.dtype != torch.uint8 or frames.ndim < 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (..., T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    scale = 1.0 / (255.0 * torch.tensor(IMAGENET_STD, device=frames.device))
    shift = torch.tensor(IMAGENET_MEAN, device=frames.device) / torch.tensor(IMAGENET_STD, device=frames.device)
    x = torch.addcmul(-shift, frames.float(), scale)  # (..., T, H, W, 3): x / 255 / std - mean / std
    return x.movedim(-1, -4).contiguous()  # (..., 3, T, H, W)


def to_uint8_frames(clip: torch.Tensor) -> np.ndarray:
    """ImageNet-normalised (3, T, H, W) -> uint8 (T, H, W, 3), for pictures."""
    mean = clip.new_tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = clip.new_tensor(IMAGENET_STD).view(3, 1, 1, 1)
    x = (clip.float() * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).cpu().numpy()


def resize_clip_short_side(clip: torch.Tensor, size: int) -> torch.Tensor:
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
    """The evaluation / serving transform: short side -> img_size, center crop, normalise. (3, T, S, S).

    Frame by frame, so that only one full-resolution frame is float at a time: 16 frames of 1080p as one float
    clip held ~475 MB at peak, frame by frame ~50 MB (measured). Each frame takes the same float conversion and
    interpolate call the whole clip took, so the output equals the whole-clip path (tested to 1e-6; bit-identical
    in practice). The frame is made contiguous before the float conversion: interpolate on the permuted
    (channels-last) view allocates several frame-sized buffers.
    """
    x = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0:
        raise ValueError(f"expected frames of shape (T, H, W, 3), T > 0, got {tuple(x.shape)}")
    crops = []
    for i in range(len(x)):
        frame = x[i : i + 1].permute(3, 0, 1, 2).contiguous().float().div_(255.0)  # (3, 1, H, W), as to_tensor
        crops.append(center_crop(resize_clip_short_side(frame, img_size), img_size))  # (3, 1, S, S)
    return normalize(torch.cat(crops, dim=1))  # (3, T, S, S)


def reference_tad_clip(frames: np.ndarray | torch.Tensor, img_size: int) -> torch.Tensor:
    """The transform of the reference's `extract_tad_feature.py` (its `ToFloatTensorInZeroOne` then `Resize((224,
    224))`): [0, 1] floats, every frame resized bilinearly to img_size x img_size (the aspect is not kept, nothing is
    cropped, no antialiasing) and *no* mean/std normalisation, although its models were trained on normalised clips
    (OpenGVLab/VideoMAEv2 issue 62 asks about it; unanswered). Use it to reproduce the reference's released TAD
    features; `eval_clip` is what the model saw in training and what /v1/embed serves. (3, T, S, S).

    Frame by frame, as `eval_clip`: the reference interpolates (3, T, H, W) as a batch of 3 images of T channels, so
    every (channel, frame) plane is resized on its own and the result is the same."""
    x = torch.as_tensor(np.asarray(frames)) if not isinstance(frames, torch.Tensor) else frames
    if x.ndim != 4 or x.shape[-1] != 3 or len(x) == 0:
        raise ValueError(f"expected frames of shape (T, H, W, 3), T > 0, got {tuple(x.shape)}")
    out = []
    for i in range(len(x)):
        frame = x[i : i + 1].permute(3, 0, 1, 2).contiguous().float().div_(255.0)  # (3, 1, H, W)
        out.append(F.interpolate(frame, size=(img_size, img_size), mode="bilinear", align_corners=False))
    return torch.cat(out, dim=1)  # (3, T, S, S)


# Clip transforms by name (feature extraction's `windows.transform`, recorded in its manifest and the search index).
# Each treats every frame on its own, so a video's frames can be transformed once and overlapping windows cut from
# the result (trainer/extraction/chunks.py does; tests/trainer/test_extract.py checks it equals transforming each
# window).
CLIP_TRANSFORMS = {"eval": eval_clip, "reference_tad": reference_tad_clip}


def sliding_windows(num_frames_total: int, clip_len: int, stride: int, window_stride: int) -> list[int]:
    """Start frames of sliding clips covering a video (at least one clip, even for short videos)."""
    span = (clip_len - 1) * stride + 1
    last = max(num_frames_total - span, 0)
    starts = list(range(0, last + 1, max(window_stride, 1)))
    return starts or [0]
