"""Transformer layers with the reference's parameter layout.

Parameter names match OpenGVLab/VideoMAEv2 `models/modeling_finetune.py` (`patch_embed.proj`, `attn.qkv`,
`attn.q_bias`, `attn.v_bias`, `attn.proj`, `norm1`, `norm2`, `mlp.fc1`, `mlp.fc2`, `gamma_1`, `gamma_2`), so the
reference's checkpoints load by stripping prefixes only. Generic parts come from timm (Mlp, DropPath).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn

from videomae.targets import patchify


class CubeEmbed(nn.Module):
    """Tubelet ("cube") embedding: Conv3d with kernel = stride = (t, p, p), flattened t-major, then h, then w."""

    def __init__(self, in_chans: int, embed_dim: int, tubelet_size: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=(tubelet_size, patch_size, patch_size),
                              stride=(tubelet_size, patch_size, patch_size))

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        x = self.proj(clip)  # (B, C, T/t, H/p, W/p)
        return x.flatten(2).transpose(1, 2)  # (B, N, C), N in (t, h, w) order

    def forward_at(self, clip: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Only the tubelets at `idx` (B, K): the same Conv3d (kernel = stride) as one matmul over those tubelets'
        pixels. The reference embeds all N and then keeps the visible ones, K/N = 10% of that work at tube 0.9."""
        weight = self.proj.weight  # (C, 3, t, p, p)
        cubes = patchify(clip, weight.shape[2], weight.shape[3]).flatten(2)  # (B, N, t*p*p*3), channel fastest
        cubes = torch.take_along_dim(cubes, idx[..., None], dim=1)  # (B, K, t*p*p*3)
        return F.linear(cubes, weight.permute(0, 2, 3, 4, 1).flatten(1), self.proj.bias)  # (B, K, C)


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """The fixed 1-D sinusoid table of the reference (`get_sinusoid_encoding_table`): (num_positions, dim).

    Channel 2i is sin(pos / 10000^(2i/dim)), channel 2i+1 is cos of the same angle (interleaved, not concatenated).
    Computed in float64 like the reference's numpy version, then cast.
    """
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (N, 1)
    exponent = 2 * (torch.arange(dim) // 2).to(torch.float64) / dim  # (dim,)
    angles = pos / torch.pow(10000.0, exponent)  # (N, dim)
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float()


def resample_table(table: torch.Tensor, src_grid: tuple[int, int, int], dst_grid: tuple[int, int, int]) -> torch.Tensor:
    """Re-interpolate a (N, C) position table laid out on `src_grid` to `dst_grid` (trilinear), for clips whose
    frame count or size differ from the model's. The reference does the same spatially when it fine-tunes at another
    resolution (`run_class_finetuning.py`, pos_embed interpolation)."""
    if src_grid == dst_grid:
        return table
    c = table.shape[-1]
    grid = table.reshape(1, *src_grid, c).permute(0, 4, 1, 2, 3)  # (1, C, T', H', W')
    grid = F.interpolate(grid, size=dst_grid, mode="trilinear", align_corners=False)  # (1, C, T'', H'', W'')
    return grid.permute(0, 2, 3, 4, 1).reshape(-1, c)  # (N'', C)


class Attention(nn.Module):
    """Multi-head self-attention; qkv projection without bias plus separate q and v biases (k has none).

    `fused=True` runs F.scaled_dot_product_attention; `fused=False` is the reference's explicit softmax(q k^T) v,
    kept for parity checks and the attention benchmark.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)
        self.fused = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))  # k gets no bias
        qkv = F.linear(x, self.qkv.weight, bias)  # (B, N, 3C)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x (B, heads, N, d)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, heads, N, N)
            out = attn.softmax(dim=-1) @ v  # (B, heads, N, d)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))  # (B, N, C)


def set_attention(model: nn.Module, fused: bool) -> None:
    """SDPA (`fused`) or the reference's explicit softmax attention in every attention layer of `model`."""
    for m in model.modules():
        if isinstance(m, Attention):
            m.fused = fused


class Block(nn.Module):
    """Pre-norm transformer block with DropPath and optional layer scale (gamma_1, gamma_2)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, norm_eps: float,
                 drop_path: float = 0.0, init_values: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU)
        if init_values > 0:
            self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
            self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))
        else:
            self.gamma_1 = self.gamma_2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gamma_1 is None:
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


def stochastic_depth(rate: float, depth: int) -> list[float]:
    """Linearly increasing drop-path rates over the blocks (the reference's `torch.linspace(0, rate, depth)`)."""
    if depth == 1:
        return [0.0]
    return [rate * i / (depth - 1) for i in range(depth)]


def init_xavier(module: nn.Module) -> None:
    """The reference's pre-training init: xavier-uniform Linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def init_trunc_normal(module: nn.Module) -> None:
    """The reference's fine-tuning init: truncated-normal (std .02) Linear weights."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
