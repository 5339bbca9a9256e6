"""VideoMAE V2: a dual-masked video masked autoencoder (Wang et al., CVPR 2023, arXiv 2303.16727).

Dimensions, named once:
    B  batch            T, H, W  frames, height, width of the clip     t, p  tubelet length, patch size
    N  = (T/t)(H/p)(W/p) tokens    N_vis  tokens the encoder sees      N_dec  tokens the decoder predicts
    C  encoder width    D  decoder width    P = 3*t*p*p values predicted per token

The pre-training model reads like the paper: cube embedding -> fixed sinusoid positions -> encoder on the visible
tokens (tube mask) -> decoder on the visible tokens plus mask tokens at the decoded subset (running-cell mask) ->
per-tubelet normalised pixel targets -> MSE on tokens hidden from the encoder and decoded. Tokens are selected by
gathering at positions read once per batch (`masks.mask_positions`), not by boolean indexing, so the whole step
compiles as one graph (`torch.compile(model, fullgraph=True)`). Parameter names follow the
reference (OpenGVLab/VideoMAEv2 `models/modeling_pretrain.py`, `modeling_finetune.py`).

The kinds of model these classes make are declared once, at the bottom (`MODEL_KINDS`: pretrain, classifier,
encoder): the class each is built as, what its weights hold, how its weights are recognised in the reference's and
Hugging Face's checkpoints, the `transformers` class that holds it, and what it can serve; `model_kind(model)` names
the kind of a model. Checkpoint reading, saving, export (`videomae.export`), the API, the recipes and feature
extraction read the table; adding a kind (a new head) is adding its class and one entry there.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.utils.checkpoint as cp
from torch import nn

from videomae import storage
from videomae.config import VideoMAEConfig
from videomae.layers import (
    Block,
    CubeEmbed,
    init_trunc_normal,
    init_xavier,
    resample_table,
    sinusoid_table,
    stochastic_depth,
)
from videomae.masks import mask_positions
from videomae.modeldir import write_model
from videomae.targets import masked_loss, reconstruction_targets


class _Transformer(nn.Module):
    """The part shared by encoder and classifier: cube embed + position table + blocks + final norm."""

    def __init__(self, cfg: VideoMAEConfig, final_norm: bool):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = CubeEmbed(cfg.in_chans, cfg.embed_dim, cfg.tubelet_size, cfg.patch_size)
        # Fixed, not learned, and not saved (the reference keeps it out of its state dict too).
        self.register_buffer("pos_embed", sinusoid_table(cfg.num_patches, cfg.embed_dim), persistent=False)
        rates = stochastic_depth(cfg.drop_path_rate, cfg.depth)
        self.blocks = nn.ModuleList(
            Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps, rates[i], cfg.init_values)
            for i in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps) if final_norm else nn.Identity()
        self.grad_checkpointing = cfg.grad_checkpointing

    def grid_of(self, clip: torch.Tensor) -> tuple[int, int, int]:
        _, _, t, h, w = clip.shape
        c = self.cfg
        if t % c.tubelet_size or h % c.patch_size or w % c.patch_size:
            raise ValueError(f"clip of {t}x{h}x{w} (TxHxW) is not divisible into {c.tubelet_size}x{c.patch_size}"
                             f"x{c.patch_size} tubelets")
        return t // c.tubelet_size, h // c.patch_size, w // c.patch_size

    def embed(self, clip: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, N, C) tokens with positions, or only the K tokens at `idx` (B, K) -> (B, K, C).
        Positions are re-interpolated for other clip sizes."""
        pos = resample_table(self.pos_embed, self.cfg.grid, self.grid_of(clip))  # (N, C)
        if idx is None:
            x = self.patch_embed(clip)  # (B, N, C)
            return x + pos.to(x.dtype)
        x = self.patch_embed.forward_at(clip, idx)  # (B, K, C)
        return x + pos[idx].to(x.dtype)

    def run_blocks(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            if self.grad_checkpointing and self.training:
                x = cp.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return self.norm(x)

    def forward_features(self, clip: torch.Tensor) -> torch.Tensor:
        """Every token, no masking: (B, N, C) after the final norm."""
        return self.run_blocks(self.embed(clip))


class VideoMAEDecoder(nn.Module):
    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        rates = stochastic_depth(cfg.drop_path_rate, cfg.decoder_depth)
        self.blocks = nn.ModuleList(
            Block(cfg.decoder_embed_dim, cfg.decoder_num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps, rates[i],
                  cfg.init_values)
            for i in range(cfg.decoder_depth)
        )
        self.norm = nn.LayerNorm(cfg.decoder_embed_dim, eps=cfg.head_eps)
        self.head = nn.Linear(cfg.decoder_embed_dim, cfg.patch_dim)
        self.grad_checkpointing = cfg.grad_checkpointing

    def forward(self, x: torch.Tensor, n_dec: int) -> torch.Tensor:
        for blk in self.blocks:
            x = cp.checkpoint(blk, x, use_reentrant=False) if self.grad_checkpointing and self.training else blk(x)
        return self.head(self.norm(x[:, -n_dec:]))  # (B, N_dec, P): predictions for the mask tokens only


class VideoMAEPretrain(nn.Module):
    """Encoder + decoder for dual-masked pre-training. `loss, pred = model(clip, enc_mask, dec_mask)`."""

    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = _Transformer(cfg, final_norm=True)
        self.decoder = VideoMAEDecoder(cfg)
        self.encoder_to_decoder = nn.Linear(cfg.embed_dim, cfg.decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_embed_dim))
        self.register_buffer("pos_embed", sinusoid_table(cfg.num_patches, cfg.decoder_embed_dim), persistent=False)
        self.apply(init_xavier)
        # The reference truncates at one std: trunc_normal_(std=.02, a=-.02, b=.02).
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-0.02, b=0.02)

    def encode_visible(self, clip: torch.Tensor, vis_idx: torch.Tensor) -> torch.Tensor:
        """The encoder on the tokens at `vis_idx` (B, N_vis), the positions it sees (only those are embedded)."""
        return self.encoder.run_blocks(self.encoder.embed(clip, vis_idx))  # (B, N_vis, C)

    def decode(self, x_vis: torch.Tensor, grid: tuple[int, int, int], vis_idx: torch.Tensor,
               dec_idx: torch.Tensor) -> torch.Tensor:
        """Visible tokens plus a mask token at each position of `dec_idx` (B, N_dec) -> predictions for the latter."""
        x_vis = self.encoder_to_decoder(x_vis)  # (B, N_vis, D)
        pos = resample_table(self.pos_embed, self.cfg.grid, grid).to(x_vis.dtype)  # (N, D)
        mask_tokens = self.mask_token.to(x_vis.dtype) + pos[dec_idx]  # (B, N_dec, D)
        x = torch.cat([x_vis + pos[vis_idx], mask_tokens], dim=1)  # (B, N_vis + N_dec, D)
        return self.decoder(x, dec_idx.shape[1])  # (B, N_dec, P)

    def forward(self, clip: torch.Tensor, enc_mask: torch.Tensor, dec_mask: torch.Tensor | None = None,
                reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
        """clip (B, 3, T, H, W); enc_mask, dec_mask (B, N) bool. Without `dec_mask`, VideoMAE V1 (= enc_mask).
        Returns (loss, pred (B, N_dec, P)); the loss over the batch, or with reduction "none" each clip's, (B,)."""
        dec_mask = enc_mask if dec_mask is None else dec_mask
        grid = self.encoder.grid_of(clip)
        _check_masks(enc_mask, dec_mask, grid[0] * grid[1] * grid[2])
        # Token positions, read once per batch; every selection below is a gather of a size known from them.
        vis_idx = mask_positions(~enc_mask, "visible tokens (enc_mask False)")  # (B, N_vis)
        dec_idx = mask_positions(dec_mask, "decoded tokens (dec_mask True)")  # (B, N_dec)
        pred = self.decode(self.encode_visible(clip, vis_idx), grid, vis_idx, dec_idx)  # (B, N_dec, P)
        targets = reconstruction_targets(clip, self.cfg.tubelet_size, self.cfg.patch_size)  # (B, N, P)
        return masked_loss(pred, targets, enc_mask, dec_mask, dec_idx, reduction), pred

    def forward_features(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, N, C) encoder tokens after the final norm, no masking."""
        return self.encoder.forward_features(clip)

    def forward_pooled(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, C) clip feature: the mean of the encoder's tokens."""
        return self.pool(self.forward_features(clip))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) tokens of `forward_features` -> (B, C) clip feature."""
        return tokens.mean(dim=1)

    @property
    def has_decoder(self) -> bool:
        return True

    def no_weight_decay(self) -> set[str]:
        return {"mask_token"}

    def save(self, directory: str | Path) -> Path | str:
        return save_model(self, directory)


class VideoMAEClassifier(_Transformer):
    """Encoder + mean pool + fc_norm + dropout + linear head (the reference's fine-tuning `VisionTransformer`)."""

    def __init__(self, cfg: VideoMAEConfig):
        super().__init__(cfg, final_norm=not cfg.use_mean_pooling)
        self.fc_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.head_eps) if cfg.use_mean_pooling else None
        self.head_dropout = nn.Dropout(cfg.head_drop_rate)
        # num_classes = 0: a feature extractor without a head (the reference's nn.Identity head).
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.apply(init_trunc_normal)
        if cfg.num_classes > 0:
            with torch.no_grad():
                self.head.weight.mul_(cfg.init_scale)
                self.head.bias.mul_(cfg.init_scale)

    def forward_pooled(self, clip: torch.Tensor) -> torch.Tensor:
        """(B, C) clip feature: fc_norm(mean of tokens); without mean pooling, the mean of the normed tokens (the
        reference takes token 0 there, a leftover of class-token ViTs: VideoMAE has no class token)."""
        return self.pool(self.forward_features(clip))

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) tokens of `forward_features` -> (B, C) clip feature, as `forward_pooled`."""
        return self.fc_norm(tokens.mean(dim=1)) if self.fc_norm is not None else tokens.mean(dim=1)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.classify(self.forward_features(clip))  # (B, num_classes)

    def classify(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) tokens of `forward_features` -> (B, num_classes) logits, as `forward`."""
        return self.head(self.head_dropout(self.pool(tokens)))

    @property
    def has_decoder(self) -> bool:
        return False

    def no_weight_decay(self) -> set[str]:
        return set()

    def save(self, directory: str | Path) -> Path | str:
        return save_model(self, directory)


def _check_masks(enc_mask: torch.Tensor, dec_mask: torch.Tensor, n: int) -> None:
    """Types and shapes only, which a compiled graph knows statically; equal counts per row are checked where the
    positions are read (`mask_positions`)."""
    if enc_mask.dtype != torch.bool or dec_mask.dtype != torch.bool:
        raise TypeError("enc_mask and dec_mask must be bool tensors")
    for name, m in (("enc_mask", enc_mask), ("dec_mask", dec_mask)):
        if m.dim() != 2 or m.shape[1] != n:
            raise ValueError(f"{name} must be (B, N) with N = {n} tokens of this clip; got {tuple(m.shape)}")


def create_model(preset: str = "base", **overrides: Any) -> VideoMAEPretrain:
    """The pre-training model (encoder + decoder) of a registered preset, with any field overridden."""
    return VideoMAEPretrain(VideoMAEConfig.from_preset(preset, **overrides))


def create_classifier(preset: str = "base", num_classes: int = 400, **overrides: Any) -> VideoMAEClassifier:
    """The classifier (mean pool -> fc_norm -> dropout -> head) of a registered preset."""
    return VideoMAEClassifier(VideoMAEConfig.from_preset(preset, num_classes=num_classes, **overrides))


# ---------------------------------------------------------------------------------------------- the kinds
EMBED, RECONSTRUCT, CLASSIFY = "embed", "reconstruct", "classify"  # what a kind of model can serve
Keys = Collection[str]  # the weight names of a state dict


def _keys_with(prefix: str) -> Callable[[Keys], bool]:
    return lambda keys: any(k.startswith(prefix) for k in keys)


_decoder, _encoder = _keys_with("decoder."), _keys_with("encoder.")


@dataclass(frozen=True)
class ModelKind:
    """A kind of model: the class it is built as, what its weights hold (a pre-training decoder, whose model keeps its
    encoder under `encoder.`; a classification head), how its weights are recognised (each recogniser excludes the
    others of its format), the weights its checkpoints may lack, and what it can serve."""

    cls: type[nn.Module]
    decoder: bool
    head: bool
    serves: tuple[str, ...]
    in_reference: Callable[[Keys], bool]  # the reference's .pth weights, wrapper prefixes stripped
    in_hugging_face: Callable[[Keys], bool]  # a Hugging Face VideoMAE state dict, `videomae.` stripped
    hugging_face_class: str  # the `transformers` class that holds this kind (what `videomae.export` writes)
    reference_prefix: str = ""  # what the reference's weights of this kind carry before our names (stripped)
    may_lack: tuple[str, ...] = ()  # weight prefixes a checkpoint of this kind need not hold (left as built)

    @property
    def encoder_prefix(self) -> str:
        """Where the encoder's weights are in this kind's state dict."""
        return "encoder." if self.decoder else ""

    def build(self, cfg: VideoMAEConfig) -> nn.Module:
        return self.cls(cfg if self.head or self.decoder else cfg.model_copy(update={"num_classes": 0}))

    def holds(self, model: nn.Module) -> bool:
        return isinstance(model, self.cls) and (self.decoder or (model.cfg.num_classes > 0) == self.head)


MODEL_KINDS: dict[str, ModelKind] = {
    # Encoder + decoder: the pre-training model (the reference's pre-trained checkpoints, HF VideoMAEForPreTraining).
    "pretrain": ModelKind(VideoMAEPretrain, decoder=True, head=False, serves=(EMBED, RECONSTRUCT),
                          in_reference=_decoder, in_hugging_face=_decoder,
                          hugging_face_class="VideoMAEForPreTraining"),
    # Encoder + head: fine-tuned or distilled (the reference's VisionTransformer, HF VideoMAEForVideoClassification).
    "classifier": ModelKind(VideoMAEClassifier, decoder=False, head=True, serves=(EMBED, CLASSIFY),
                            in_reference=lambda k: not _decoder(k) and not _encoder(k),
                            in_hugging_face=lambda k: "classifier.weight" in k,
                            hugging_face_class="VideoMAEForVideoClassification"),
    # The encoder alone, a feature extractor (a pre-training encoder saved without its decoder, HF VideoMAEModel).
    "encoder": ModelKind(VideoMAEClassifier, decoder=False, head=False, serves=(EMBED,),
                         in_reference=lambda k: not _decoder(k) and _encoder(k),
                         in_hugging_face=lambda k: not _decoder(k) and "classifier.weight" not in k,
                         hugging_face_class="VideoMAEModel",
                         reference_prefix="encoder.", may_lack=("head.", "fc_norm.")),
}
ModelKindName = Literal[tuple(MODEL_KINDS)]
Model = VideoMAEPretrain | VideoMAEClassifier  # what the kinds build


def model_kind(model: nn.Module) -> str:
    """The kind of a model (a key of MODEL_KINDS)."""
    found = [name for name, kind in MODEL_KINDS.items() if kind.holds(model)]
    if len(found) != 1:
        raise TypeError(f"{type(model).__name__} is {' and '.join(found) or 'none'} of the model kinds "
                        f"({', '.join(MODEL_KINDS)})")
    return found[0]


def save_model(model: nn.Module, directory: str | Path, options: storage.Options = None,
               state: dict[str, torch.Tensor] | None = None) -> Path | str:
    """Write `model` as our model directory (`videomae.modeldir`) at `directory`, a path or URI; returns it. `state`:
    the weights to write instead of `model.state_dict()` (a trainer's full state gathered from sharded workers)."""
    return write_model(model, directory, model_kind(model), options, state)
