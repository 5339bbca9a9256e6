"""Architecture config: one typed, validated object per model, with derived sizes as properties.

Field names follow the reference (`img_size, patch_size, num_frames, tubelet_size, embed_dim, depth, num_heads,
mlp_ratio, decoder_embed_dim, decoder_depth, decoder_num_heads, qkv_bias, norm_eps, drop_path_rate`). The decoder's
output width, 3 * t * p * p, is derived (`patch_dim`), never a field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from videomae.presets import preset_fields


class VideoMAEConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    preset: str | None = None
    img_size: int = 224
    patch_size: int = 16
    num_frames: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    # eps of the norm right before a head: the decoder's final `norm` (pre-training) and `fc_norm` (classifier).
    # None = norm_eps, as in the reference. Hugging Face's VideoMAE builds these two with torch's default 1e-5
    # whatever its layer_norm_eps, so weights converted from HF set 1e-5 here (checkpoint.hf_to_config).
    head_norm_eps: float | None = None
    init_values: float = 0.0  # layer scale (gamma_1/gamma_2) when > 0, as the reference's `init_values`
    drop_path_rate: float = 0.0
    decoder_embed_dim: int = 384
    decoder_depth: int = 4
    decoder_num_heads: int = 6
    # Classifier head (post-pre-training / fine-tuning). 0 = no classifier.
    num_classes: int = 0
    use_mean_pooling: bool = True
    head_drop_rate: float = 0.0
    init_scale: float = 0.001  # the reference scales the fresh classifier head by this
    grad_checkpointing: bool = False

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> VideoMAEConfig:
        return cls(**{**preset_fields(name), "preset": name, **overrides})

    @model_validator(mode="after")
    def _check(self) -> VideoMAEConfig:
        problems = []
        if self.img_size % self.patch_size:
            problems.append(f"img_size ({self.img_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.num_frames % self.tubelet_size:
            problems.append(f"num_frames ({self.num_frames}) must be a multiple of tubelet_size ({self.tubelet_size})")
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.decoder_embed_dim % self.decoder_num_heads:
            problems.append(
                f"decoder_embed_dim ({self.decoder_embed_dim}) must be divisible by "
                f"decoder_num_heads ({self.decoder_num_heads})"
            )
        for name in ("img_size", "patch_size", "num_frames", "tubelet_size", "embed_dim", "depth", "num_heads"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if not 0.0 <= self.drop_path_rate < 1.0:
            problems.append("drop_path_rate must be in [0, 1)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T/t, H/p, W/p)."""
        side = self.img_size // self.patch_size
        return (self.num_frames // self.tubelet_size, side, side)

    @property
    def head_eps(self) -> float:
        """The eps of the decoder's final norm and of fc_norm (`head_norm_eps`, defaulting to `norm_eps`)."""
        return self.norm_eps if self.head_norm_eps is None else self.head_norm_eps

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def patch_dim(self) -> int:
        """Values predicted per token: 3 * t * p * p."""
        return self.in_chans * self.tubelet_size * self.patch_size**2

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump()
