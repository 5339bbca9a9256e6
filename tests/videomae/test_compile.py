"""Static-shape masking: the gathers at `mask_positions` give what boolean selection gave, on every preset's token
grid and every mask kind, and the masked model compiles as one graph whose loss equals eager."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch._dynamo

from videomae import MaskingConfig, VideoMAEConfig, create_model, list_presets, sample_masks
from videomae.layers import resample_table
from videomae.masks import DECODER_MASKS, ENCODER_MASKS, mask_positions
from videomae.targets import at_least_float32, reconstruction_targets


def boolean_selection_forward(model, clip: torch.Tensor, enc_mask: torch.Tensor, dec_mask: torch.Tensor):
    """The model's step as it was written with boolean selection (`x[mask]`, as the reference does), on the model's
    own layers: the oracle the gathers must reproduce."""
    cfg = model.cfg
    x = model.encoder.embed(clip)  # (B, N, C)
    b, _, c = x.shape
    x_vis = model.encoder.run_blocks(x[~enc_mask].reshape(b, -1, c))  # (B, N_vis, C)
    y = model.encoder_to_decoder(x_vis)  # (B, N_vis, D)
    d = y.shape[-1]
    pos = resample_table(model.pos_embed, cfg.grid, model.encoder.grid_of(clip)).expand(b, -1, -1)  # (B, N, D)
    pos_dec = pos[dec_mask].reshape(b, -1, d)  # (B, N_dec, D)
    full = torch.cat([y + pos[~enc_mask].reshape(b, -1, d), model.mask_token + pos_dec], dim=1)
    pred = model.decoder(full, pos_dec.shape[1])  # (B, N_dec, P)
    targets = reconstruction_targets(clip, cfg.tubelet_size, cfg.patch_size)  # (B, N, P)
    chosen = targets[dec_mask].reshape(b, -1, targets.shape[-1])  # (B, N_dec, P)
    per_token = (at_least_float32(pred) - chosen).pow(2).mean(dim=-1)  # (B, N_dec)
    counted = enc_mask[dec_mask].reshape(b, -1).float()  # (B, N_dec)
    return (per_token * counted).sum() / counted.sum(), pred


def narrow_model(preset: str):
    """A preset's own clip size and token grid (what the masks see) with narrow, one-block layers (what the gathers
    do not care about), so every paper grid runs in well under a second."""
    return create_model(preset, embed_dim=32, num_heads=2, depth=1, decoder_embed_dim=32, decoder_num_heads=2,
                        decoder_depth=1).train()


GRIDS = {}  # one preset per distinct token grid: small/base/large/huge share (8, 14, 14)
for _name in list_presets():
    GRIDS.setdefault(VideoMAEConfig.from_preset(_name).grid, _name)


@pytest.mark.parametrize("preset", sorted(GRIDS.values()))
def test_gathers_equal_boolean_selection_every_grid_and_mask_kind(preset):
    torch.manual_seed(0)
    model = narrow_model(preset)
    cfg = model.cfg
    clip = torch.randn(2, 3, cfg.num_frames, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(1))
    for seed, (enc_kind, dec_kind) in enumerate(itertools.product(ENCODER_MASKS, DECODER_MASKS)):
        enc, dec = sample_masks(MaskingConfig(encoder=enc_kind, decoder=dec_kind), cfg.grid, 2, seed)
        enc, dec = torch.from_numpy(enc), torch.from_numpy(dec)
        loss, pred = model(clip, enc, dec)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        ref_loss, ref_pred = boolean_selection_forward(model, clip, enc, dec)
        ref_grads = torch.autograd.grad(ref_loss, list(model.parameters()))
        where = f"{preset} grid {cfg.grid}, {enc_kind} + {dec_kind}"
        assert pred.shape == ref_pred.shape == (2, int(dec[0].sum()), cfg.patch_dim), where
        # fp32 rounding only: the gathers copy exactly (bit-identical before the visible-only cube embedding); the
        # embedding is now a matmul over the visible tubelets instead of a Conv3d over all of them. Measured worst
        # case over these grids and kinds: loss 1.1e-7 relative, pred 4.8e-7, gradients 1.9e-9 absolute.
        torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=0, msg=where)
        torch.testing.assert_close(pred, ref_pred, rtol=1e-5, atol=1e-6, msg=where)
        for g, r in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-7, msg=where)


def test_mask_positions_in_token_order_and_clear_errors():
    mask = torch.tensor([[False, True, False, True, True], [True, True, False, False, True]])
    assert mask_positions(mask, "x").tolist() == [[1, 3, 4], [0, 1, 4]]
    with pytest.raises(ValueError, match=r"same number of decoded tokens.*\[3, 2\]"):
        mask_positions(torch.tensor([[True, True, True], [True, False, True]]), "decoded tokens")
    with pytest.raises(ValueError, match="at least 2 visible tokens; got 0"):
        mask_positions(torch.zeros(2, 4, dtype=torch.bool), "visible tokens")
    with pytest.raises(ValueError, match="at least 2 visible tokens; got 1"):
        mask_positions(torch.tensor([[False, True, False], [True, False, False]]), "visible tokens")


def nano_batch(decoder: str = "running_cell", seed: int = 0):
    torch.manual_seed(0)
    model = create_model("nano").train()
    cfg = model.cfg
    clip = torch.randn(2, 3, cfg.num_frames, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(2))
    enc, dec = sample_masks(MaskingConfig(decoder=decoder), cfg.grid, 2, seed)
    return model, clip, torch.from_numpy(enc), torch.from_numpy(dec)


def test_masked_step_traces_without_graph_breaks():
    model, clip, enc, dec = nano_batch()
    torch._dynamo.reset()
    # The token counts are data (read inside `mask_positions`); dynamo keeps such an op in the graph when allowed to,
    # as `torch.compile(..., fullgraph=True)` does. With boolean selection this found 7 breaks.
    with torch._dynamo.config.patch(capture_dynamic_output_shape_ops=True):
        explained = torch._dynamo.explain(model)(clip, enc, dec)
    assert explained.graph_break_count == 0, [b.reason for b in explained.break_reasons]
    assert explained.graph_count == 1


def test_compiled_step_equals_eager():
    """One full graph (fullgraph=True raises on any break), forward and backward through AOTAutograd; then new masks
    with other counts (V1) reuse it: the token counts are symbolic, not specialised. The `aot_eager` backend keeps
    this test in seconds; inductor's generated code is compared with eager on ViT-B by bench/model_step.py."""
    model, clip, enc, dec = nano_batch()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    for i, (enc_m, dec_m) in enumerate(((enc, dec), nano_batch("none", seed=3)[2:])):
        with torch._dynamo.config.patch(error_on_recompile=i > 0):
            loss, pred = compiled(clip, enc_m, dec_m)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        eager_loss, eager_pred = model(clip, enc_m, dec_m)
        eager_grads = torch.autograd.grad(eager_loss, list(model.parameters()))
        torch.testing.assert_close(loss, eager_loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(pred, eager_pred, rtol=1e-5, atol=1e-5)
        for g, e in zip(grads, eager_grads, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)
    uneven = enc.clone()
    uneven[1, (~uneven[1]).nonzero()[0]] = True
    with pytest.raises(ValueError, match="same number of visible tokens"):  # still checked inside the graph
        compiled(clip, uneven, dec)
