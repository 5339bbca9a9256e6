"""Reference (OpenGVLab/VideoMAEv2) checkpoint layout: keys written out here from the reference's module names.

The key lists are built from the reference's naming (`models/modeling_pretrain.py`: PretrainVisionTransformer with
`encoder`, `decoder`, `encoder_to_decoder`, `mask_token`; `models/modeling_finetune.py`: VisionTransformer with
`patch_embed`, `blocks`, `fc_norm`, `head`) and the paper's shapes, never from our own state_dict, so a renamed or
reshaped parameter on our side fails here. The sinusoid tables are plain tensors in the reference (not in its state
dict), and `encoder.norm` exists while the fine-tuned model's `norm` is an Identity under mean pooling.
"""

from __future__ import annotations

import argparse

import pytest
import torch

from videomae import create_classifier, create_model, load_model
from videomae.checkpoint import CheckpointError, init_classifier_from_pretrain
from videomae.model import VideoMAEClassifier, VideoMAEPretrain

# name: (embed_dim C, mlp hidden, decoder width D, decoder mlp hidden, patch p) as in the reference's model registry
SHAPES = {
    "small": dict(c=384, hidden=1536, d=192, d_hidden=768, p=16),
    "giant": dict(c=1408, hidden=6144, d=512, d_hidden=2234, p=14),  # mlp_ratio 48/11: int(512 * 48 / 11) = 2234
}
DEPTH = {"small": 12, "giant": 2}  # giant at reduced depth (40 blocks of 1408 would be 1B parameters)
DECODER_DEPTH = 4
TUBELET = 2


def block_keys(prefix: str, c: int, hidden: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}norm1.weight": (c,), f"{prefix}norm1.bias": (c,),
        f"{prefix}attn.qkv.weight": (3 * c, c), f"{prefix}attn.q_bias": (c,), f"{prefix}attn.v_bias": (c,),
        f"{prefix}attn.proj.weight": (c, c), f"{prefix}attn.proj.bias": (c,),
        f"{prefix}norm2.weight": (c,), f"{prefix}norm2.bias": (c,),
        f"{prefix}mlp.fc1.weight": (hidden, c), f"{prefix}mlp.fc1.bias": (hidden,),
        f"{prefix}mlp.fc2.weight": (c, hidden), f"{prefix}mlp.fc2.bias": (c,),
    }


def pretrain_layout(name: str) -> dict[str, tuple[int, ...]]:
    s = SHAPES[name]
    c, d, p = s["c"], s["d"], s["p"]
    keys = {"encoder.patch_embed.proj.weight": (c, 3, TUBELET, p, p), "encoder.patch_embed.proj.bias": (c,)}
    for i in range(DEPTH[name]):
        keys.update(block_keys(f"encoder.blocks.{i}.", c, s["hidden"]))
    keys.update({"encoder.norm.weight": (c,), "encoder.norm.bias": (c,)})
    for i in range(DECODER_DEPTH):
        keys.update(block_keys(f"decoder.blocks.{i}.", d, s["d_hidden"]))
    out = 3 * TUBELET * p * p  # decoder_num_classes: 1536 for p=16, 1176 for p=14
    keys.update({"decoder.norm.weight": (d,), "decoder.norm.bias": (d,), "decoder.head.weight": (out, d),
                 "decoder.head.bias": (out,), "encoder_to_decoder.weight": (d, c), "mask_token": (1, 1, d)})
    return keys


def finetune_layout(name: str, num_classes: int) -> dict[str, tuple[int, ...]]:
    s = SHAPES[name]
    c, p = s["c"], s["p"]
    keys = {"patch_embed.proj.weight": (c, 3, TUBELET, p, p), "patch_embed.proj.bias": (c,)}
    for i in range(DEPTH[name]):
        keys.update(block_keys(f"blocks.{i}.", c, s["hidden"]))
    keys.update({"fc_norm.weight": (c,), "fc_norm.bias": (c,), "head.weight": (num_classes, c),
                 "head.bias": (num_classes,)})
    return keys


def random_state(layout: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shape, generator=gen) * 0.02 for k, shape in layout.items()}


def wrap(state: dict[str, torch.Tensor], how: str) -> dict:
    """The ways the reference (and torch.compile / DDP) save: under `model` or `module`, with prefixes."""
    extra = {"epoch": 7, "args": argparse.Namespace(model="vit")}  # the reference saves these beside the weights
    if how == "model":
        return {"model": state, **extra}
    if how == "module":
        return {"module": {f"module.{k}": v for k, v in state.items()}, **extra}
    if how == "compiled":
        return {"model": {f"module._orig_mod.{k}": v for k, v in state.items()}, **extra}
    raise ValueError(how)


def assert_loaded(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    assert set(own) == set(state), f"our layout differs: {sorted(set(own) ^ set(state))[:8]}"
    for k, v in state.items():
        assert torch.equal(own[k], v), k


# Every wrapper on small (full depth, so two-digit block indices occur); one on giant (each costs ~65M parameters).
@pytest.mark.parametrize("name,how", [("small", "model"), ("small", "module"), ("small", "compiled"),
                                      ("giant", "compiled")])
def test_reference_pretrain_loads_strictly(tmp_path, name, how):
    state = random_state(pretrain_layout(name))
    torch.save(wrap(state, how), tmp_path / "checkpoint.pth")
    model = load_model(tmp_path / "checkpoint.pth", preset=name)
    assert isinstance(model, VideoMAEPretrain)
    assert model.cfg.depth == DEPTH[name] and model.cfg.decoder_depth == DECODER_DEPTH
    assert_loaded(model, state)


@pytest.mark.parametrize("name,how", [("small", "module"), ("giant", "model")])
def test_reference_finetuned_loads_strictly(tmp_path, name, how):
    state = random_state(finetune_layout(name, num_classes=710))
    torch.save(wrap(state, how), tmp_path / "finetuned.pth")
    clf = load_model(tmp_path / "finetuned.pth", preset=name)
    assert isinstance(clf, VideoMAEClassifier) and clf.cfg.num_classes == 710 and clf.cfg.use_mean_pooling
    assert_loaded(clf, state)


def test_missing_key_is_named(tmp_path):
    state = random_state(pretrain_layout("small"))
    del state["encoder.blocks.3.attn.v_bias"]
    torch.save({"model": state}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): encoder\.blocks\.3\.attn\.v_bias"):
        load_model(tmp_path / "c.pth", preset="small")


def test_wrong_key_is_named(tmp_path):
    state = random_state(pretrain_layout("small"))
    state["decoder.norm.gamma"] = state.pop("decoder.norm.weight")
    torch.save({"model": state}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError) as err:
        load_model(tmp_path / "c.pth", preset="small")
    assert "decoder.norm.weight" in str(err.value) and "decoder.norm.gamma" in str(err.value)


def test_wrong_shape_is_named(tmp_path):
    state = random_state(finetune_layout("small", num_classes=10))
    state["blocks.0.mlp.fc2.bias"] = torch.zeros(383)
    torch.save({"module": state}, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match=r"blocks\.0\.mlp\.fc2\.bias: checkpoint \(383,\) vs model \(384,\)"):
        load_model(tmp_path / "c.pth", preset="small")


def encoder_weights_equal(clf: VideoMAEClassifier, pre: VideoMAEPretrain) -> None:
    enc = pre.encoder.state_dict()
    own = clf.state_dict()
    for k in enc:
        if k in own:
            assert torch.equal(own[k], enc[k]), k
    assert {k for k in enc if k.startswith(("blocks.", "patch_embed."))} <= set(own)


@pytest.mark.parametrize("via", ["model", "our_dir", "reference_pth"])
def test_init_classifier_from_pretrain_copies_encoder(tmp_path, via):
    torch.manual_seed(0)
    pre = create_model("nano")
    with torch.no_grad():  # move everything off its init so "copied" is distinguishable from "freshly initialised"
        for p in pre.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    source = {"model": pre, "our_dir": pre.save(tmp_path / "pre"), "reference_pth": tmp_path / "pre.pth"}[via]
    if via == "reference_pth":
        torch.save({"model": pre.state_dict()}, source)
    clf = create_classifier("nano", num_classes=4)
    head_before = clf.head.weight.clone()
    init_classifier_from_pretrain(clf, source)
    encoder_weights_equal(clf, pre)
    assert torch.equal(clf.head.weight, head_before)  # the head stays fresh
    # Without mean pooling the classifier keeps the encoder's final norm: features are then the encoder's exactly.
    clf_norm = create_classifier("nano", num_classes=4, use_mean_pooling=False)
    init_classifier_from_pretrain(clf_norm, pre)
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(clf_norm.eval().forward_features(x), pre.eval().forward_features(x))


def test_init_classifier_refuses_another_architecture():
    with pytest.raises(CheckpointError, match="shape mismatches"):
        init_classifier_from_pretrain(create_classifier("tiny", num_classes=2), create_model("nano"))


def test_a_file_that_is_no_checkpoint_is_named(tmp_path):
    """`load_model` on a JSON file (or an empty one) says what it expected, not torch's UnpicklingError."""
    import videomae

    for name, data in (("config.json", b'{"preset": "nano"}'), ("empty.pth", b"")):
        bad = tmp_path / name
        bad.write_bytes(data)
        with pytest.raises(CheckpointError, match=rf"{name}: not a checkpoint this loader reads .*Give our model"):
            videomae.load_model(bad, preset="nano")
