"""Analytic forward FLOPs of the pre-training model and the encoder, per clip.

Convention (fvcore's `FlopCountAnalysis`, the one that reproduces the paper's Table 1): **one multiply-add = one
FLOP**, counting only

- the cube embedding Conv3d (N tokens x C x 3*t*p*p: the reference embeds every token before the encoder drops the
  masked ones, and the paper counts that; our model embeds only the N_vis visible tubelets, `embed_visible_only`),
- every Linear layer (qkv, attention proj, MLP fc1/fc2, encoder_to_decoder, decoder head),
- the two attention matmuls, q k^T and attn v (2 x n^2 x width per block; the reference's explicit-softmax
  attention is what fvcore traces; SDPA would be invisible to it, so we count it either way),
- every LayerNorm at 5 FLOPs per element (fvcore's `norm_flop_jit` for an affine norm: it traces `aten::layer_norm`).

Softmax, GELU, biases, residual adds and position-table adds are not counted (fvcore skips elementwise ops). With
this convention ViT-B, 16 x 224 x 224, tube mask 0.9 gives 35.482G with the V1 decoder and 25.871G with running-cell
0.5 decoding: the paper's 35.48G and 25.87G (arXiv 2303.16727, Table 1), to the last printed digit. Without the
norms (`count_norms=False`, pure multiply-adds) the totals are 35.440G / 25.840G, 0.12% low; the encoder on a
whole clip (`encoder_flops`) is 180.5G, the ~180G usually quoted for ViT-B at 16 x 224 x 224.

Token counts: the encoder sees N_vis = N - hidden tokens; the decoder runs on N_vis + N_dec tokens and its head on
the N_dec mask tokens only (`x[:, -N_dec:]` before `norm` and `head`, as the reference). The multiply-add part equals
what `torch.utils.flop_counter.FlopCounterMode` traces (/2) on the model with `Attention.fused=False`
(tests/videomae/test_flops.py; with `embed_visible_only=True`, since the model embeds only the visible tubelets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from videomae.config import VideoMAEConfig
from videomae.masks import MaskingConfig, sample_masks

_NORM_FLOPS_PER_ELEMENT = 5  # fvcore's norm_flop_jit with an affine LayerNorm


@dataclass(frozen=True)
class FlopCount:
    """Forward FLOPs (multiply-adds) of one clip, by stage."""

    embed: int
    encoder: int
    encoder_to_decoder: int
    decoder: int
    head: int

    @property
    def total(self) -> int:
        return self.embed + self.encoder + self.encoder_to_decoder + self.decoder + self.head

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def block_flops(tokens: int, width: int, mlp_hidden: int, count_norms: bool = True) -> int:
    """One pre-norm transformer block on `tokens` tokens: qkv (3 C^2) + proj (C^2) + fc1 + fc2 per token, plus the
    q k^T and attn v matmuls (n^2 C each)."""
    linear = tokens * (3 * width * width + width * width + 2 * width * mlp_hidden)
    attention = 2 * tokens * tokens * width
    norms = 2 * _NORM_FLOPS_PER_ELEMENT * tokens * width if count_norms else 0
    return linear + attention + norms


def pretrain_flops(cfg: VideoMAEConfig, n_visible: int, n_decoded: int, count_norms: bool = True,
                   embed_visible_only: bool = False) -> FlopCount:
    """Forward FLOPs of the pre-training model for one clip of the config's size, with `n_visible` encoder tokens and
    `n_decoded` mask tokens in the decoder. Default: the reference's (and the paper's) count, which embeds all N
    tubelets; `embed_visible_only`: what `VideoMAEPretrain` computes."""
    n = n_visible if embed_visible_only else cfg.num_patches
    c, d = cfg.embed_dim, cfg.decoder_embed_dim
    embed = n * c * cfg.patch_dim  # kernel = stride: one (3*t*p*p) dot product per embedded token and channel
    enc_hidden, dec_hidden = int(c * cfg.mlp_ratio), int(d * cfg.mlp_ratio)
    norm = _NORM_FLOPS_PER_ELEMENT if count_norms else 0
    # Final norms: the encoder's on the visible tokens, the decoder's on the mask tokens only.
    encoder = cfg.depth * block_flops(n_visible, c, enc_hidden, count_norms) + norm * n_visible * c
    decoder = cfg.decoder_depth * block_flops(n_visible + n_decoded, d, dec_hidden, count_norms) + norm * n_decoded * d
    return FlopCount(embed=embed, encoder=encoder, encoder_to_decoder=n_visible * c * d, decoder=decoder,
                     head=n_decoded * d * cfg.patch_dim)


def masked_token_counts(cfg: VideoMAEConfig, masking: MaskingConfig) -> tuple[int, int]:
    """(N_vis, N_dec) for a masking config. Every mask kind draws exact counts, so one draw tells them."""
    enc, dec = sample_masks(masking, cfg.grid, 1, np.random.default_rng(0))
    return int((~enc).sum()), int(dec.sum())


def masked_pretrain_flops(cfg: VideoMAEConfig, masking: MaskingConfig, count_norms: bool = True,
                          embed_visible_only: bool = False) -> FlopCount:
    """Forward FLOPs of one pre-training clip under `masking` (e.g. tube 0.9 + running cell 0.5)."""
    n_visible, n_decoded = masked_token_counts(cfg, masking)
    return pretrain_flops(cfg, n_visible, n_decoded, count_norms, embed_visible_only)


def encoder_flops(cfg: VideoMAEConfig, count_norms: bool = True) -> int:
    """Forward FLOPs of the encoder on a whole clip (feature extraction / classification, head excluded)."""
    n, c = cfg.num_patches, cfg.embed_dim
    final_norm = _NORM_FLOPS_PER_ELEMENT * n * c if count_norms else 0
    return n * c * cfg.patch_dim + cfg.depth * block_flops(n, c, int(c * cfg.mlp_ratio), count_norms) + final_norm
