"""videomae: the core library (model, masks, targets/loss, presets, checkpoints, video I/O)."""

from videomae.checkpoint import load_model
from videomae.config import VideoMAEConfig
from videomae.masks import MaskingConfig, sample_masks
from videomae.model import (
    MODEL_KINDS,
    VideoMAEClassifier,
    VideoMAEPretrain,
    create_classifier,
    create_model,
    model_kind,
    save_model,
)
from videomae.presets import list_presets

__all__ = [
    "VideoMAEConfig",
    "VideoMAEPretrain",
    "VideoMAEClassifier",
    "MODEL_KINDS",
    "model_kind",
    "MaskingConfig",
    "create_model",
    "create_classifier",
    "load_model",
    "save_model",
    "sample_masks",
    "list_presets",
]
