"""The benchmark's baseline (bench/reference_step.py, the reference's step rebuilt from its code) computes our
model's function: same weights, same clip and masks -> the same prediction and loss, V1 and dual, so the timing
comparison in bench/model_step.py is between two implementations of one computation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from videomae import MaskingConfig, create_model, sample_masks

# Loaded from its file: putting bench/ on sys.path would shadow the `api` package with bench/api.py.
_spec = importlib.util.spec_from_file_location("reference_step", Path(__file__).resolve().parents[2] / "bench" /
                                               "reference_step.py")
reference_step = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_step)


@pytest.mark.parametrize("decoder", ["running_cell", "none"])
def test_reference_stand_in_equals_our_model(decoder):
    torch.manual_seed(0)
    model = create_model("nano").train()
    cfg = model.cfg
    ref = reference_step.ReferencePretrain(cfg).train()
    ref.load_state_dict(model.state_dict())  # strict: the reference's parameter names are ours
    clip = torch.randn(2, 3, cfg.num_frames, cfg.img_size, cfg.img_size, generator=torch.Generator().manual_seed(1))
    enc, dec = (torch.from_numpy(m) for m in sample_masks(MaskingConfig(decoder=decoder), cfg.grid, 2, 0))
    loss, pred = model(clip, enc, dec)
    torch.testing.assert_close(ref(clip, enc, dec), pred, rtol=1e-5, atol=1e-5)
    opt = torch.optim.AdamW(reference_step.param_groups(ref, 0.05), lr=1e-4)
    before = ref.encoder.blocks[0].attn.qkv.weight.detach().clone()
    ref_loss = reference_step.train_step(ref, opt, clip, enc, dec, bf16=False)
    assert ref_loss == pytest.approx(loss.item(), rel=1e-6)
    assert not torch.equal(before, ref.encoder.blocks[0].attn.qkv.weight)  # the step updated the weights
