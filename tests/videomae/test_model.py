"""Model properties over every preset: forward + backward, gradient checkpointing, position re-interpolation,
save/load in our format, and clear errors for wrong presets and configs."""

from __future__ import annotations

import json

import pytest
import torch

import videomae
from videomae import MaskingConfig, VideoMAEConfig, create_classifier, create_model, load_model, sample_masks
from videomae.layers import resample_table, sinusoid_table
from videomae.model import CLASSIFY, MODEL_KINDS, RECONSTRUCT, model_kind

PAPER = ("small", "base", "large", "huge", "giant")


def tiny_overrides(name: str) -> dict:
    """Small inputs for every preset: a 2x2 spatial grid of 4 frames for the paper sizes, with their widths, heads,
    MLP ratios, patch sizes and decoders kept but 2 encoder blocks (12-40 identical blocks of width 384-1408 add
    nothing but minutes of init and memory on a 2-core machine). The CPU presets run whole, at their own sizes."""
    if name not in PAPER:
        return {}
    return dict(img_size=2 * videomae.VideoMAEConfig.from_preset(name).patch_size, num_frames=4, depth=2)


def masks(cfg: VideoMAEConfig, batch: int, seed: int = 0, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    enc, dec = sample_masks(MaskingConfig(encoder_ratio=0.5, **kw), cfg.grid, batch, seed)
    return torch.from_numpy(enc), torch.from_numpy(dec)


def clip_for(cfg: VideoMAEConfig, batch: int = 2, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size, generator=gen)  # (B, 3, T, H, W)


def test_list_presets_has_paper_and_cpu_sizes():
    names = videomae.list_presets()
    assert set(PAPER) | {"nano", "tiny"} <= set(names)


@pytest.mark.parametrize("name", videomae.list_presets())
def test_forward_backward_every_preset(name):
    torch.manual_seed(0)
    model = create_model(name, **tiny_overrides(name)).train()
    cfg = model.cfg
    x = clip_for(cfg)
    enc, dec = masks(cfg, 2)
    loss, pred = model(x, enc, dec)
    assert pred.shape == (2, int(dec[0].sum()), cfg.patch_dim) and torch.isfinite(loss)
    loss.backward()
    for k, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), k
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
    clf = create_classifier(name, num_classes=3, **tiny_overrides(name)).train()
    logits = clf(x)
    assert logits.shape == (2, 3)
    logits.logsumexp(-1).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in clf.parameters() if p.grad is not None)
    assert clf.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["pretrain", "classifier"])
def test_gradient_checkpointing_same_loss_and_grads(kind):
    def run(ckpt: bool):
        torch.manual_seed(0)
        build = create_model if kind == "pretrain" else lambda n, **o: create_classifier(n, num_classes=3, **o)
        model = build("nano", grad_checkpointing=ckpt).train()
        x = clip_for(model.cfg)
        if kind == "pretrain":
            loss = model(x, *masks(model.cfg, 2))[0]
        else:
            loss = model(x).pow(2).mean()
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    loss_a, grads_a = run(False)
    loss_b, grads_b = run(True)
    torch.testing.assert_close(loss_a, loss_b, rtol=0, atol=0)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for k in grads_a:
        torch.testing.assert_close(grads_a[k], grads_b[k], rtol=1e-6, atol=1e-7, msg=k)


def test_resample_table_keeps_layout():
    # A table that only depends on (h, w) must stay so when only the number of slices changes: catches a
    # reshape that mixes the t/h/w order.
    hw = torch.randn(1, 3, 4, 8)  # (1, H', W', C)
    table = hw.expand(2, 3, 4, 8).reshape(-1, 8)  # (t*h*w, C), t-major
    out = resample_table(table, (2, 3, 4), (5, 3, 4))  # (5*3*4, C)
    torch.testing.assert_close(out.reshape(5, 3, 4, 8), hw.expand(5, 3, 4, 8))
    assert resample_table(table, (2, 3, 4), (2, 3, 4)) is table


def test_other_clip_sizes_reinterpolate_positions():
    model = create_model("nano").eval()  # trained for 8 x 64 x 64 -> grid (4, 4, 4)
    x = clip_for(VideoMAEConfig.from_preset("nano", num_frames=4, img_size=96), batch=1)  # grid (2, 6, 6)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (1, 2 * 6 * 6, 96) and torch.isfinite(feats).all()
        enc, dec = sample_masks(MaskingConfig(), (2, 6, 6), 1, 0)
        loss, pred = model(x, torch.from_numpy(enc), torch.from_numpy(dec))
        assert torch.isfinite(loss) and pred.shape[1] == int(dec.sum())
        # The table used for this clip is the trilinear resample of the model's own one.
        expect = resample_table(sinusoid_table(64, 96), (4, 4, 4), (2, 6, 6))
        embedded = model.encoder.embed(x) - model.encoder.patch_embed(x)
        torch.testing.assert_close(embedded[0], expect)
    with pytest.raises(ValueError, match="not divisible"):
        model.forward_features(torch.zeros(1, 3, 5, 64, 64))


def test_save_load_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("nano", drop_path_rate=0.1).eval()
    x = clip_for(model.cfg)
    enc, dec = masks(model.cfg, 2)
    model.save(tmp_path / "pre")
    meta = json.loads((tmp_path / "pre" / "config.json").read_text())
    assert meta["preset"] == "nano" and meta["model_type"] == "pretrain" and meta["embed_dim"] == 96
    loaded = load_model(tmp_path / "pre").eval()
    assert type(loaded) is type(model) and loaded.cfg == model.cfg
    with torch.no_grad():
        assert torch.equal(model(x, enc, dec)[1], loaded(x, enc, dec)[1])
        assert torch.equal(model.forward_pooled(x), loaded.forward_pooled(x))
    # A Ray Train checkpoint directory holds the model directory under model/.
    model.save(tmp_path / "ray_ckpt" / "model")
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "ray_ckpt").eval().forward_features(x), model.forward_features(x))

    clf = create_classifier("nano", num_classes=5).eval()
    clf.save(tmp_path / "clf")
    again = load_model(tmp_path / "clf").eval()
    assert type(again) is type(clf) and not again.has_decoder
    with torch.no_grad():
        assert torch.equal(clf(x), again(x))


def test_wrong_preset_lists_valid_ones():
    with pytest.raises(KeyError) as err:
        create_model("bass")
    for name in videomae.list_presets():
        assert name in str(err.value)


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match=r"img_size \(100\) must be a multiple of patch_size \(16\)"):
        VideoMAEConfig.from_preset("base", img_size=100)
    with pytest.raises(ValueError, match=r"num_frames \(5\).*tubelet_size"):
        VideoMAEConfig(num_frames=5)
    with pytest.raises(ValueError, match=r"embed_dim \(100\) must be divisible by num_heads \(12\)"):
        VideoMAEConfig(embed_dim=100)
    with pytest.raises(ValueError, match="embed_dimm"):
        create_model("nano", embed_dimm=64)
    with pytest.raises(ValueError, match="drop_path_rate"):
        VideoMAEConfig(drop_path_rate=1.5)


def test_mask_errors_are_clear():
    model = create_model("nano")
    x = clip_for(model.cfg)
    enc, dec = masks(model.cfg, 2)
    with pytest.raises(TypeError, match="bool"):
        model(x, enc.int(), dec)
    uneven = enc.clone()
    uneven[1, (~uneven[1]).nonzero()[0]] = True  # one more hidden token in sample 1
    with pytest.raises(ValueError, match="enc_mask"):
        model(x, uneven, dec)


def test_pooled_features_shapes():
    model = create_model("nano").eval()
    clf = create_classifier("nano", num_classes=0).eval()
    x = clip_for(model.cfg)
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, 64, 96)
        assert model.forward_pooled(x).shape == (2, 96)
        assert clf(x).shape == clf.forward_pooled(x).shape == (2, 96)  # num_classes=0: a feature extractor


@pytest.mark.parametrize("name", list(MODEL_KINDS))
def test_every_model_kind_builds_saves_loads_and_is_named(name, tmp_path):
    """Each kind of the declaration: built from a preset, named by `model_kind`, saved under its name and loaded back
    as the same kind with the same outputs; the API's schema offers exactly the declared kinds."""
    from api.engine import describe
    from api.schemas import ModelInfo

    kind = MODEL_KINDS[name]
    torch.manual_seed(0)
    model = kind.build(VideoMAEConfig.from_preset("nano", num_classes=5)).eval()
    assert model_kind(model) == name and model.has_decoder == kind.decoder
    model.save(tmp_path / name)
    assert json.loads((tmp_path / name / "config.json").read_text())["model_type"] == name
    loaded = load_model(tmp_path / name).eval()
    assert model_kind(loaded) == name
    x = clip_for(model.cfg)
    with torch.no_grad():
        assert torch.equal(model.forward_pooled(x), loaded.forward_pooled(x))
    info = describe(loaded)
    assert info.model_type == name and info.can_reconstruct == (RECONSTRUCT in kind.serves)
    assert (info.num_classes > 0) == (CLASSIFY in kind.serves)
    assert ModelInfo.model_json_schema()["properties"]["model_type"]["enum"] == list(MODEL_KINDS)


def test_directories_written_before_model_type_load_as_their_weights_say(tmp_path):
    for model in (create_model("nano"), create_classifier("nano", num_classes=3), create_classifier("nano", 0)):
        model.save(tmp_path / "m")
        meta = json.loads((tmp_path / "m" / "config.json").read_text())
        del meta["model_type"]
        (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
        assert model_kind(load_model(tmp_path / "m")) == model_kind(model)


def test_per_clip_loss_is_each_clips_own_forward():
    """reduction "none" (the API's batches of several requests): each clip's loss is the loss of its forward alone."""
    torch.manual_seed(0)
    model = create_model("nano").eval()
    x = clip_for(model.cfg, batch=3)
    enc, dec = masks(model.cfg, 3)
    with torch.no_grad():
        each, pred = model(x, enc, dec, reduction="none")
        assert each.shape == (3,) and pred.shape[0] == 3
        for b in range(3):
            alone, _ = model(x[b:b + 1], enc[b:b + 1], dec[b:b + 1])
            torch.testing.assert_close(each[b], alone, rtol=1e-5, atol=1e-6)
