"""videomae/pictures.py: the reconstruction views, and that they cannot flatter a model that predicts nothing."""

from __future__ import annotations

import numpy as np
import torch

import videomae
from videomae.masks import MaskingConfig, sample_masks
from videomae.pictures import ROWS, grid_image, panels


def _clip_and_masks(model, seed=0):
    cfg = model.cfg
    torch.manual_seed(seed)
    clip = torch.randn(3, cfg.num_frames, cfg.img_size, cfg.img_size) * 0.5
    enc, dec = sample_masks(MaskingConfig(), cfg.grid, 1, seed)
    return clip, torch.from_numpy(enc[0]), torch.from_numpy(dec[0])


def test_panels_loss_is_the_models_loss():
    model = videomae.create_model("nano").eval()
    clip, enc, dec = _clip_and_masks(model)
    p = panels(model, clip, enc, dec)
    assert set(ROWS) <= set(p)
    loss, _ = model(clip[None], enc[None], dec[None])
    assert abs(p["loss"] - float(loss)) < 1e-5
    for name in ROWS:
        assert p[name].shape == (model.cfg.num_frames, model.cfg.img_size, model.cfg.img_size, 3)
        assert 0 <= p[name].min() and p[name].max() <= 1


def test_a_model_that_predicts_nothing_looks_like_it():
    """All-zero predictions: the reference-style reconstruction still shows each hidden cube's true mean colour, but
    the prediction alone is flat grey wherever the loss counts, and the loss is the target's variance (~1)."""
    model = videomae.create_model("nano").eval()
    with torch.no_grad():
        model.decoder.head.weight.zero_()
        model.decoder.head.bias.zero_()
    clip, enc, dec = _clip_and_masks(model, 1)
    p = panels(model, clip, enc, dec)
    cfg = model.cfg
    t, s = cfg.tubelet_size, cfg.patch_size
    scored = (enc & dec).reshape(cfg.grid)  # (T', H', W')
    ti, hi, wi = (int(v) for v in scored.nonzero()[0])
    cube = (slice(ti * t, ti * t + t), slice(hi * s, hi * s + s), slice(wi * s, wi * s + s))
    assert np.allclose(p["prediction"][cube], 0.5)
    recon = p["reconstruction"][cube]
    # flat per colour channel, but the clip's own colour, not grey
    assert recon.reshape(-1, 3).std(0).max() < 1e-3 and abs(recon.mean() - 0.5) > 1e-3
    assert 0.8 < p["loss"] < 1.2


def test_grid_image_layout():
    rows = [np.zeros((8, 16, 16, 3)), np.ones((8, 16, 16, 3))]
    img = grid_image(rows, every=2, gap=2)
    assert img.shape == (2 * 16 + 2, 4 * 16 + 3 * 2, 3) and img.dtype == np.uint8
    assert img[0, 0].tolist() == [0, 0, 0] and img[-1, -1].tolist() == [255, 255, 255]
