"""Parity with Hugging Face `transformers` VideoMAE: an independent implementation of the same network.

Each HF model is built at random init (no downloads), every parameter re-drawn so that no bias or norm stays at its
trivial init (a zero q_bias would hide a wrong mapping), saved with `save_pretrained`, and loaded through our
`videomae.load_model`. Encoder features, the V1 pre-training loss (norm_pix_loss, same clip and mask) and classifier
logits must then match: to 1e-5 in float32 and to 1e-9 in float64, with our attention both fused (SDPA) and explicit
(the reference's softmax(q k^T) v); HF runs its SDPA or eager attention to match. The float64 bound is the one that
sees a wrong LayerNorm eps: leaving the decoder norm at 1e-12 instead of HF's 1e-5 moves pred by ~3e-6.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from videomae import load_model
from videomae.layers import set_attention
from videomae.masks import tube_mask
from videomae.model import VideoMAEClassifier, VideoMAEPretrain

GRID = (2, 4, 4)  # 4 frames / tubelet 2, 64 px / patch 16
TOL = {torch.float32: 1e-5, torch.float64: 1e-9}
MODES = [(dtype, fused) for dtype in (torch.float32, torch.float64) for fused in (True, False)]


def hf_config(fused: bool, **kw) -> transformers.VideoMAEConfig:
    cfg = transformers.VideoMAEConfig(
        image_size=64, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=48, num_hidden_layers=2,
        num_attention_heads=3, intermediate_size=192, decoder_hidden_size=32, decoder_num_hidden_layers=2,
        decoder_num_attention_heads=2, decoder_intermediate_size=128, qkv_bias=True, norm_pix_loss=True, **kw)
    cfg._attn_implementation = "sdpa" if fused else "eager"
    return cfg


def randomize(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2 + (1.0 if p.ndim == 1 and p.shape[0] % 2 else 0.0))


def convert(hf_model, tmp_path, dtype, fused):
    randomize(hf_model, 0)
    hf_model.save_pretrained(tmp_path)
    ours = load_model(tmp_path).to(dtype).eval()
    set_attention(ours, fused)
    return hf_model.to(dtype).eval(), ours


def clip(dtype) -> torch.Tensor:
    return torch.randn(2, 3, 4, 64, 64, generator=torch.Generator().manual_seed(1)).to(dtype)  # (B, 3, T, H, W)


def hf_pixels(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 1, 3, 4)  # HF takes (B, T, 3, H, W)


def close(a: torch.Tensor, b: torch.Tensor, dtype) -> None:
    torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype,fused", MODES)
@pytest.mark.parametrize("use_mean_pooling", [False, True])
def test_encoder_features_match(tmp_path, dtype, fused, use_mean_pooling):
    # use_mean_pooling=True: HF's VideoMAEModel has no final layernorm; False: it has one (= our `norm`).
    hf, ours = convert(transformers.VideoMAEModel(hf_config(fused, use_mean_pooling=use_mean_pooling)), tmp_path,
                       dtype, fused)
    assert isinstance(ours, VideoMAEClassifier) and not ours.has_decoder
    x = clip(dtype)
    with torch.no_grad():
        close(ours.forward_features(x), hf(hf_pixels(x)).last_hidden_state, dtype)


@pytest.mark.parametrize("dtype,fused", MODES)
def test_pretraining_loss_matches_v1(tmp_path, dtype, fused):
    hf, ours = convert(transformers.VideoMAEForPreTraining(hf_config(fused, use_mean_pooling=False)), tmp_path,
                       dtype, fused)
    assert isinstance(ours, VideoMAEPretrain)
    # HF's decoder final LayerNorm is built with torch's default eps (1e-5), not config.layer_norm_eps (1e-12 here);
    # the loader records that as head_norm_eps so the converted model computes the same function.
    assert ours.decoder.norm.eps == 1e-5 and ours.decoder.blocks[0].norm1.eps == 1e-12
    x = clip(dtype)
    enc = torch.from_numpy(tube_mask(GRID, 0.75, 2, 3))  # True = hidden = HF's bool_masked_pos
    with torch.no_grad():
        out = hf(hf_pixels(x), bool_masked_pos=enc)
        loss, pred = ours(x, enc, enc)  # V1: the decoder predicts every hidden token
    close(pred, out.logits, dtype)
    close(loss, out.loss, dtype)
    assert loss.dtype == dtype  # targets are not silently computed in a lower precision


@pytest.mark.parametrize("dtype,fused", MODES)
def test_classifier_logits_match(tmp_path, dtype, fused):
    hf, ours = convert(transformers.VideoMAEForVideoClassification(hf_config(fused, use_mean_pooling=True,
                                                                             num_labels=5)), tmp_path, dtype, fused)
    assert isinstance(ours, VideoMAEClassifier) and ours.cfg.num_classes == 5
    assert ours.fc_norm.eps == 1e-5  # HF's fc_norm also takes torch's default eps
    x = clip(dtype)
    with torch.no_grad():
        close(ours(x), hf(hf_pixels(x)).logits, dtype)


def test_hf_pretraining_without_encoder_norm_is_refused(tmp_path):
    # HF's VideoMAEForPreTraining with use_mean_pooling=True has no encoder layernorm; the reference's pre-training
    # encoder always ends in one, so such weights cannot be our pre-training model: say so, don't load half of it.
    hf = transformers.VideoMAEForPreTraining(hf_config(True, use_mean_pooling=True))
    hf.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="use_mean_pooling"):
        load_model(tmp_path)
