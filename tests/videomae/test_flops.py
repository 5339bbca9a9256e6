"""The analytic FLOP counter: the paper's numbers for ViT-B, and agreement with what torch traces."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from videomae import MaskingConfig, VideoMAEConfig, create_model, sample_masks
from videomae.flops import encoder_flops, masked_pretrain_flops
from videomae.layers import set_attention


@pytest.mark.parametrize("decoder,paper", [("none", 35.48e9), ("running_cell", 25.87e9)])
def test_vit_b_reproduces_paper_table(decoder, paper):
    # arXiv 2303.16727 Table 1: ViT-B, 16 x 224 x 224, tube 0.9; V1 decoder 35.48G, running cell 0.5 25.87G.
    flops = masked_pretrain_flops(VideoMAEConfig.from_preset("base"), MaskingConfig(decoder=decoder)).total
    assert abs(flops - paper) / paper < 0.01
    assert round(flops / 1e9, 2) == round(paper / 1e9, 2)  # in fact to the last printed digit


@pytest.mark.parametrize("decoder", ["none", "running_cell", "frame"])
def test_multiply_adds_equal_traced_count(decoder):
    # FlopCounterMode counts 2 FLOPs per multiply-add for conv/mm/bmm and nothing else: it must see exactly our
    # multiply-adds (count_norms=False) on the model with the reference's explicit attention.
    model = create_model("nano").eval()
    set_attention(model, fused=False)
    cfg = model.cfg
    masking = MaskingConfig(decoder=decoder)
    enc, dec = sample_masks(masking, cfg.grid, 1, 0)
    x = torch.randn(1, 3, cfg.num_frames, cfg.img_size, cfg.img_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, torch.from_numpy(enc), torch.from_numpy(dec))
    traced = counter.get_total_flops()
    assert traced == 2 * masked_pretrain_flops(cfg, masking, count_norms=False, embed_visible_only=True).total
    # The reference's count (the paper's) embeds every tubelet: more by the hidden ones' share of the embedding.
    n_hidden = int(enc.sum())
    paper = masked_pretrain_flops(cfg, masking, count_norms=False).total
    assert paper - traced // 2 == n_hidden * cfg.embed_dim * cfg.patch_dim
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.forward_features(x)
    assert counter.get_total_flops() == 2 * encoder_flops(cfg, count_norms=False)


def test_dual_masking_saves_decoder_flops():
    cfg = VideoMAEConfig.from_preset("base")
    v1 = masked_pretrain_flops(cfg, MaskingConfig(decoder="none"))
    v2 = masked_pretrain_flops(cfg, MaskingConfig(decoder="running_cell", decoder_ratio=0.5))
    assert v1.encoder == v2.encoder and v1.embed == v2.embed
    assert v2.decoder < 0.55 * v1.decoder and v2.head < v1.head
