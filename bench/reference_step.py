"""The reference's dual-masked pre-training step, rebuilt from reading its code, as the baseline of the benchmarks.

OpenGVLab/VideoMAEv2: `models/modeling_pretrain.py` (PretrainVisionTransformer: encoder on `x[~mask]`, decoder on the
visible tokens plus mask tokens at the decoded positions, head on the last N_dec tokens), `models/modeling_finetune.py`
(Block, Attention: explicit `softmax((q * scale) @ k^T) @ v`, Mlp, PatchEmbed, the sinusoid table; VisionTransformer,
the fine-tuning model, as `ReferenceClassifier`: the layout of its fine-tuned and distilled checkpoints, which
videomae.export's reference format is checked against), `engine_for_pretraining.py` (targets under no_grad, loss
under autocast, `loss.item()`, zero_grad, backward, the gradient norm of every step, optimizer step),
`optim_factory.py` (torch AdamW with a decay / no-decay split).

Written here from reading, not copied; the parameter names are the reference's, which are also ours, so the model
loads our state dict (`load_state_dict(model.state_dict())`) and both start from the same weights. What it keeps
from the reference because the benchmark is about it: boolean-mask selection (data-dependent shapes, a host sync per
selection on GPU), the materialised (B, heads, n, n) attention matrix, the zero-probability Dropout modules, fp32
position tables cast per step, and torch's default AdamW (on CPU the per-parameter loop; the reference passes no
`foreach` / `fused`). It runs eager, as the reference does. Masks use our convention: `dec_mask` True = decoded
(the reference passes `decode_masked_pos` = its negation).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from videomae.config import VideoMAEConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def sinusoid(n: int, dim: int) -> torch.Tensor:
    """(1, n, dim): sin on even channels, cos on odd ones, of pos / 10000^(2 (j // 2) / dim); numpy float64 -> fp32."""
    j = np.arange(dim)
    angles = np.arange(n)[:, None] / np.power(10000, 2 * (j // 2) / dim)[None, :]
    angles[:, 0::2], angles[:, 1::2] = np.sin(angles[:, 0::2]), np.cos(angles[:, 1::2])
    return torch.tensor(angles, dtype=torch.float32)[None]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias, self.v_bias = nn.Parameter(torch.zeros(dim)), nn.Parameter(torch.zeros(dim))
        self.attn_drop, self.proj, self.proj_drop = nn.Dropout(0.0), nn.Linear(dim, dim), nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias, requires_grad=False), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self.attn_drop(((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1))  # (B, heads, n, n)
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(b, n, -1)))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act = nn.Linear(dim, hidden), nn.GELU()
        self.fc2, self.drop = nn.Linear(hidden, dim), nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, eps: float):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim, eps=eps), Attention(dim, heads)
        self.norm2, self.mlp = nn.LayerNorm(dim, eps=eps), Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))  # drop_path 0: the reference's nn.Identity
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        k = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(cfg.in_chans, cfg.embed_dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Encoder(nn.Module):
    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed = sinusoid(cfg.num_patches, cfg.embed_dim)  # a plain attribute, as there
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.norm_eps)
                                    for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = x + self.pos_embed.type_as(x).to(x.device).clone().detach()
        b, _, c = x.shape
        x = x[~mask].reshape(b, -1, c)  # visible tokens
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        d = cfg.decoder_embed_dim
        self.blocks = nn.ModuleList(Block(d, cfg.decoder_num_heads, cfg.mlp_ratio, cfg.norm_eps)
                                    for _ in range(cfg.decoder_depth))
        self.norm, self.head = nn.LayerNorm(d, eps=cfg.head_eps), nn.Linear(d, cfg.patch_dim)

    def forward(self, x: torch.Tensor, n_dec: int) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x[:, -n_dec:]))


class ReferencePretrain(nn.Module):
    """`PretrainVisionTransformer` (init_values 0, no drop path, no cos attention, no checkpointing)."""

    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        if cfg.init_values > 0 or cfg.drop_path_rate > 0 or not cfg.qkv_bias:
            raise ValueError("the reference stand-in covers the pre-training presets: qkv bias, no layer scale or "
                             "drop path")
        self.cfg = cfg
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        self.encoder_to_decoder = nn.Linear(cfg.embed_dim, cfg.decoder_embed_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_embed_dim))
        self.pos_embed = sinusoid(cfg.num_patches, cfg.decoder_embed_dim)

    def forward(self, x: torch.Tensor, enc_mask: torch.Tensor, dec_mask: torch.Tensor) -> torch.Tensor:
        x_vis = self.encoder_to_decoder(self.encoder(x, enc_mask))  # (B, N_vis, D)
        b, _, d = x_vis.shape
        pos = self.pos_embed.expand(b, -1, -1).type_as(x).to(x.device).clone().detach()
        pos_vis, pos_dec = pos[~enc_mask].reshape(b, -1, d), pos[dec_mask].reshape(b, -1, d)
        full = torch.cat([x_vis + pos_vis, self.mask_token + pos_dec], dim=1)
        return self.decoder(full, pos_dec.shape[1])


class ReferenceClassifier(nn.Module):
    """`modeling_finetune.VisionTransformer` (fixed sinusoid positions, no layer scale, no drop path): patch_embed ->
    + pos_embed -> blocks -> norm (an Identity under mean pooling) -> fc_norm(mean of tokens), or token 0 without
    mean pooling -> head_dropout -> head (an Identity for num_classes 0). Its state dict is the reference's fine-tuned
    and distilled checkpoints' layout; videomae.export's reference format is checked against it."""

    def __init__(self, cfg: VideoMAEConfig):
        super().__init__()
        if cfg.init_values > 0 or not cfg.qkv_bias:
            raise ValueError("the reference stand-in covers qkv bias without layer scale")
        self.patch_embed = PatchEmbed(cfg)
        self.pos_embed = sinusoid(cfg.num_patches, cfg.embed_dim)  # a plain attribute, as there
        self.pos_drop = nn.Dropout(0.0)
        self.blocks = nn.ModuleList(Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.norm_eps)
                                    for _ in range(cfg.depth))
        self.norm = nn.Identity() if cfg.use_mean_pooling else nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.fc_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.head_eps) if cfg.use_mean_pooling else None
        self.head_dropout = nn.Dropout(cfg.head_drop_rate)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = self.pos_drop(x + self.pos_embed.expand(x.shape[0], -1, -1).type_as(x).to(x.device).clone().detach())
        for blk in self.blocks:
            x = blk(x)
        return self.fc_norm(x.mean(1)) if self.fc_norm is not None else self.norm(x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_dropout(self.forward_features(x)))


def targets(clip: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """engine_for_pretraining: un-normalise, per tubelet and channel normalise, '(p0 p1 p2 c)' flattening."""
    with torch.no_grad():
        mean = torch.as_tensor(IMAGENET_MEAN, device=clip.device)[None, :, None, None, None]
        std = torch.as_tensor(IMAGENET_STD, device=clip.device)[None, :, None, None, None]
        x = clip * std + mean
        b, c, t, h, w = x.shape
        x = x.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
        x = x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, -1, tubelet * patch * patch, c)  # b (t h w) (p0 p1 p2) c
        x = (x - x.mean(dim=-2, keepdim=True)) / (x.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
        return x.flatten(2)  # b n (p c)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """optim_factory.get_parameter_groups: no decay on 1-D parameters, biases and the mask token."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim == 1 or name.endswith(".bias") or name == "mask_token" else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def grad_norm(params) -> float:
    """utils.get_grad_norm_: the 2-norm of the per-parameter 2-norms (computed every step, only logged)."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    return float(torch.norm(torch.stack([torch.norm(g, 2.0) for g in grads]), 2.0))


def train_step(model: ReferencePretrain, optimizer: torch.optim.Optimizer, clip: torch.Tensor, enc_mask: torch.Tensor,
               dec_mask: torch.Tensor, bf16: bool) -> float:
    """One step of `train_one_epoch` (bf16 autocast in place of its fp16 autocast + loss scaler). Returns the loss."""
    cfg = model.cfg
    labels = targets(clip, cfg.tubelet_size, cfg.patch_size)
    b, _, p = labels.shape
    labels = labels[dec_mask].reshape(b, -1, p)
    with torch.autocast(clip.device.type, dtype=torch.bfloat16, enabled=bf16):
        outputs = model(clip, enc_mask, dec_mask)
        loss = ((outputs - labels) ** 2).mean(dim=-1)
        counted = enc_mask[dec_mask].reshape(b, -1)
        loss = (loss * counted).sum() / counted.sum()
    value = loss.item()
    if not math.isfinite(value):
        raise RuntimeError(f"reference step: loss is {value}")
    optimizer.zero_grad()
    loss.backward()
    grad_norm(model.parameters())
    optimizer.step()
    return value
