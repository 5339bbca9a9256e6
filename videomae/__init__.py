"""videomae: the core library (model, masks, targets/loss, presets, checkpoints, video I/O).

The names below load on first use (PEP 562), so a process that only needs storage, video decoding or the shard
format (every ingest task, the dedupe stages) does not import torch: about 700 MB of RSS and seconds per process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "load_model": "videomae.checkpoint",
    "VideoMAEConfig": "videomae.config",
    "MaskingConfig": "videomae.masks",
    "sample_masks": "videomae.masks",
    "MODEL_KINDS": "videomae.model",
    "VideoMAEClassifier": "videomae.model",
    "VideoMAEPretrain": "videomae.model",
    "create_classifier": "videomae.model",
    "create_model": "videomae.model",
    "model_kind": "videomae.model",
    "save_model": "videomae.model",
    "list_presets": "videomae.presets",
}

__all__ = [  # the names of _HOMES
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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value
    try:  # a submodule not imported yet (`videomae.checkpoint` after `import videomae`)
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module 'videomae' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


if TYPE_CHECKING:
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
