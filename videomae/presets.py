"""Registered architecture presets.

The five paper sizes copy the reference exactly (OpenGVLab/VideoMAEv2 `models/modeling_pretrain.py` and
`modeling_finetune.py`, with `--decoder_depth 4` as every V2 pre-training script passes). The tiny presets are ours:
they pre-train on a 2-core CPU in minutes and keep every mechanism (tubes, running cells, a 4-block decoder).
"""

from __future__ import annotations

from typing import Any

_PRESETS: dict[str, dict[str, Any]] = {}


def register_preset(name: str, **fields: Any) -> None:
    if name in _PRESETS:
        raise ValueError(f"preset {name!r} is already registered")
    _PRESETS[name] = dict(fields)


def list_presets() -> list[str]:
    """Names of every registered preset, paper sizes first."""
    return list(_PRESETS)


def preset_fields(name: str) -> dict[str, Any]:
    """The architecture fields of preset `name`; a wrong name lists the valid ones."""
    try:
        return dict(_PRESETS[name])
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; valid presets: {', '.join(_PRESETS)}") from None


_PAPER = dict(img_size=224, num_frames=16, tubelet_size=2, qkv_bias=True, norm_eps=1e-6, decoder_depth=4)

register_preset("small", **_PAPER, patch_size=16, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0,
                decoder_embed_dim=192, decoder_num_heads=3)
register_preset("base", **_PAPER, patch_size=16, embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0,
                decoder_embed_dim=384, decoder_num_heads=6)
register_preset("large", **_PAPER, patch_size=16, embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0,
                decoder_embed_dim=512, decoder_num_heads=8)
register_preset("huge", **_PAPER, patch_size=16, embed_dim=1280, depth=32, num_heads=16, mlp_ratio=4.0,
                decoder_embed_dim=512, decoder_num_heads=8)
# ViT-g: patch 14 and MLP ratio 48/11, so the decoder MLP hidden size is int(512 * 48 / 11) = 2234.
register_preset("giant", **_PAPER, patch_size=14, embed_dim=1408, depth=40, num_heads=16, mlp_ratio=48 / 11,
                decoder_embed_dim=512, decoder_num_heads=8)

# CPU-sized presets (ours). 8 frames x 64 px -> a 4x4x4 grid of 64 tokens; 16 x 112 px -> 8x7x7 (odd grid on purpose
# is avoided: running-cell masks need an even spatial grid, so `tiny` uses 96 px -> 4x6x6 = 144 tokens).
register_preset("nano", img_size=64, num_frames=8, tubelet_size=2, patch_size=16, qkv_bias=True, norm_eps=1e-6,
                embed_dim=96, depth=4, num_heads=3, mlp_ratio=4.0, decoder_embed_dim=64, decoder_num_heads=2,
                decoder_depth=2)
register_preset("tiny", img_size=96, num_frames=8, tubelet_size=2, patch_size=16, qkv_bias=True, norm_eps=1e-6,
                embed_dim=192, depth=6, num_heads=3, mlp_ratio=4.0, decoder_embed_dim=96, decoder_num_heads=3,
                decoder_depth=4)
