"""videomae.export, checked by the real clients: `transformers` (from_pretrained of the class each kind maps to),
the reference's model code rebuilt from reading it (bench/reference_step.py: `PretrainVisionTransformer`, its
encoder, the fine-tuning `VisionTransformer`; strict `load_state_dict`), and ONNX Runtime.

Clips are real: frames ffmpeg's testsrc2 draws, through the serving transform (`eval_clip`). Weights are re-drawn
(every bias and norm off its trivial init, so a wrong or swapped mapping shows) at the nano preset's shapes, with
`head_norm_eps` at Hugging Face's fixed 1e-5 where HF parity is checked (a preset's 1e-6 is what the export's
`head_norm_eps` line is about; tested apart). One test runs the `base` preset's shapes.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from videomae import MaskingConfig, create_classifier, create_model, load_model, sample_masks
from videomae.export import ExportError, export_model, main
from videomae.masks import tube_mask
from videomae.model import model_kind
from videomae.transforms import eval_clip

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("reference_step", REPO / "bench" / "reference_step.py")
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

TOL = 1e-5  # fp32, transformers and the reference's code
ONNX_TOL = 1e-4
HF_CLASS = {"pretrain": transformers.VideoMAEForPreTraining, "classifier": transformers.VideoMAEForVideoClassification,
            "encoder": transformers.VideoMAEModel}  # written out here, not read from the table under test


def real_clips(batch: int, frames: int, size: int) -> torch.Tensor:
    """(B, 3, T, S, S): consecutive stretches of ffmpeg's testsrc2 (moving, coloured), ImageNet-normalised."""
    w, h = size * 3 // 2, size
    raw = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25",
                          "-frames:v", str(batch * frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    video = np.frombuffer(raw, np.uint8).reshape(batch, frames, h, w, 3).copy()
    return torch.stack([eval_clip(v, size) for v in video])


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2 + (1.0 if p.ndim == 1 and p.shape[0] % 2 else 0.0))
    return model.eval()


def nano(kind: str, **kw) -> torch.nn.Module:
    if kind == "pretrain":
        return randomize(create_model("nano", **kw))
    return randomize(create_classifier("nano", num_classes=5 if kind == "classifier" else 0, **kw))


MODELS = {"pretrain": {}, "classifier": {}, "encoder": {"use_mean_pooling": False}}


@pytest.fixture(scope="module")
def clips():
    return real_clips(8, 8, 64)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa), [k for k in sa if not torch.equal(sa[k], sb[k])]


def close(a: torch.Tensor, b: torch.Tensor, tol: float = TOL) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)  # as tests/videomae/test_hf_parity.py


# ------------------------------------------------------------------------------------------------ transformers
@pytest.mark.parametrize("kind", list(MODELS))
def test_hf_export_loads_in_transformers_with_our_outputs(kind, clips, tmp_path):
    ours = nano(kind, head_norm_eps=1e-5, **MODELS[kind])
    assert model_kind(ours) == kind
    done = export_model(ours, "hf", tmp_path, labels=[f"class {i}" for i in range(5)] if kind == "classifier" else None)
    assert done.kind == kind and (tmp_path / "README.md").is_file() and (tmp_path / "model.safetensors").is_file()
    hf = HF_CLASS[kind].from_pretrained(tmp_path, attn_implementation="eager").eval()
    assert type(hf) is HF_CLASS[kind]
    x = clips[:2]
    pixels = x.permute(0, 2, 1, 3, 4)  # HF takes (B, T, 3, H, W)
    base = hf if kind == "encoder" else hf.videomae
    with torch.no_grad():
        hidden = base(pixels).last_hidden_state
        close(hidden, ours.forward_features(x))
        if kind == "pretrain":
            close(hidden.mean(1), ours.forward_pooled(x))
            enc = torch.from_numpy(tube_mask(ours.cfg.grid, 0.75, 2, 3))  # True = hidden = HF's bool_masked_pos
            out = hf(pixels, bool_masked_pos=enc)
            loss, pred = ours(x, enc, enc)  # VideoMAE V1: HF decodes every hidden token
            close(out.logits, pred)
            close(out.loss, loss)
        elif kind == "classifier":
            close(hf.fc_norm(hidden.mean(1)), ours.forward_pooled(x))
            close(hf(pixels).logits, ours(x))
            assert hf.config.id2label[3] == "class 3"
        else:
            close(hidden.mean(1), ours.forward_pooled(x))
    same_weights(load_model(tmp_path), ours)  # the round trip, bit for bit


def test_hf_export_says_what_it_holds_differently(clips, tmp_path):
    ours = nano("pretrain")  # the preset's head eps, 1e-6: HF fixes its decoder norm's at 1e-5
    notes = export_model(ours, "hf", tmp_path).notes
    assert [n.split(":")[0] for n in notes] == ["head_norm_eps", "decoder mask"]
    assert "head_norm_eps" in (tmp_path / "README.md").read_text()
    hf = transformers.VideoMAEForPreTraining.from_pretrained(tmp_path).eval()
    with torch.no_grad():  # what HF holds exactly stays exact: every block, the encoder's norm
        close(hf.videomae(clips[:2].permute(0, 2, 1, 3, 4)).last_hidden_state, ours.forward_features(clips[:2]))
    same_weights(load_model(tmp_path), ours)


@pytest.mark.parametrize("fields,named", [({"init_values": 0.1}, "init_values"),
                                          ({"use_mean_pooling": False}, "use_mean_pooling")])
def test_hf_export_refuses_what_hf_cannot_hold(fields, named, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=named):
        export_model(nano("classifier", **fields), "hf", out)
    assert not out.exists()  # nothing half-written
    assert export_model(nano("classifier", **fields), "reference", out).kind == "classifier"  # the reference holds it


# ------------------------------------------------------------------------------------------ the reference's code
@pytest.mark.parametrize("kind,wrapper", [("pretrain", "model"), ("classifier", "model"), ("classifier", "module"),
                                          ("encoder", "model")])
def test_reference_export_loads_strictly_in_the_reference_code(kind, wrapper, clips, tmp_path):
    ours = nano(kind, **MODELS[kind])
    export_model(ours, "reference", tmp_path, wrapper=wrapper)
    state = torch.load(tmp_path / "model.pth", map_location="cpu", weights_only=True)[wrapper]
    x = clips[:2]
    with torch.no_grad():
        if kind == "pretrain":
            ref = reference.ReferencePretrain(ours.cfg).eval()
            ref.load_state_dict(state, strict=True)
            enc, dec = (torch.from_numpy(m) for m in sample_masks(MaskingConfig(), ours.cfg.grid, 2, 0))  # dual
            close(ref(x, enc, dec), ours(x, enc, dec)[1])
        elif kind == "classifier":
            ref = reference.ReferenceClassifier(ours.cfg).eval()
            ref.load_state_dict(state, strict=True)
            close(ref(x), ours(x))
            close(ref.forward_features(x), ours.forward_pooled(x))
        else:  # a pre-training encoder's weights, `encoder.`-prefixed; its fine-tuning script strips the prefix
            assert all(k.startswith("encoder.") for k in state)
            ref = reference.Encoder(ours.cfg).eval()
            ref.load_state_dict({k[len("encoder."):]: v for k, v in state.items()}, strict=True)
            no_mask = torch.zeros(2, ours.cfg.num_patches, dtype=torch.bool)
            close(ref(x, no_mask), ours.forward_features(x))
    same_weights(load_model(tmp_path), ours)


# ------------------------------------------------------------------------------------------------ ONNX Runtime
def test_onnx_export_runs_in_onnxruntime(clips, tmp_path):
    import onnx
    import onnxruntime

    ours = nano("classifier")
    export_model(ours, "onnx", tmp_path)
    graph = onnx.load(str(tmp_path / "model.onnx"))
    onnx.checker.check_model(graph)
    assert [o.name for o in graph.graph.output] == ["features", "logits"]
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["model_type"] == "classifier" and json.loads(meta["videomae_config"]) == ours.cfg.to_json_dict()
    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 8):
        x = clips[:batch]
        features, logits = session.run(None, {"clip": x.numpy()})
        with torch.no_grad():
            close(torch.from_numpy(features), ours.forward_pooled(x), ONNX_TOL)
            close(torch.from_numpy(logits), ours(x), ONNX_TOL)


# ---------------------------------------------------------------------------------------- the command, at base
def test_command_line_exports_and_refuses(tmp_path, capsys):
    src = tmp_path / "model"
    nano("classifier").save(src)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"motion {i}\n" for i in range(5)))
    proc = subprocess.run([sys.executable, "-m", "videomae.export", str(src), "--format", "hf", "--out",
                           str(tmp_path / "hf"), "--labels", str(labels)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "head_norm_eps" in proc.stderr and "wrote hf export of a classifier model" in proc.stdout
    assert transformers.VideoMAEConfig.from_pretrained(tmp_path / "hf").id2label[4] == "motion 4"
    assert main([str(src), "--format", "hf", "--out", str(tmp_path / "x"), "--labels", str(tmp_path / "labels.txt"),
                 "--fp16"]) == 2
    assert "fp16: only onnx" in capsys.readouterr().err
    labels.write_text("a\nb\n")
    assert main([str(src), "--format", "reference", "--out", str(tmp_path / "x"), "--labels", str(labels)]) == 2
    assert "2 names for a head of 5 classes" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_base_preset_shapes_through_transformers_and_the_reference(tmp_path):
    ours = create_model("base", head_norm_eps=1e-5).eval()  # its own init: realistic scales at this width
    x = real_clips(1, 16, 224)
    enc = torch.from_numpy(tube_mask(ours.cfg.grid, 0.9, 1, 0))
    export_model(ours, "hf", tmp_path / "hf")
    hf = transformers.VideoMAEForPreTraining.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        out = hf(x.permute(0, 2, 1, 3, 4), bool_masked_pos=enc)
        loss, pred = ours(x, enc, enc)
    close(out.logits, pred)
    close(out.loss, loss)
    export_model(ours, "reference", tmp_path / "ref")
    ref = reference.ReferencePretrain(ours.cfg)
    ref.load_state_dict(torch.load(tmp_path / "ref" / "model.pth", weights_only=True)["model"], strict=True)


def test_a_runs_model_is_exported_with_its_class_names_and_record(tmp_path):
    """A run directory as the trainer leaves it (its resolved config written by the trainer's own function): the
    classifier's id2label comes from the dataset's labels.json for the run's target source, and the card records the
    run's data and last metrics."""
    from trainer.checkpointing import save_resolved_config
    from trainer.config import load_config

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "labels.json").write_text(json.dumps({"names": ["left", "right", "up", "down"], "sources": {
        "motion_a": {"classes": ["left", "right"], "to_merged": [0, 1]}}}))
    cfg = load_config("postpretrain", REPO / "configs" / "postpretrain" / "tiny.yaml",
                      [f"data.path={shards}", "target_source=motion_a", f"run.storage_path={tmp_path}"])
    run = tmp_path / "run"
    save_resolved_config(str(run), cfg.model_dump(mode="json"))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 5, "loss": 0.5}) + "\n" +
                                       json.dumps({"step": 6, "loss": 0.25}) + "\n")
    randomize(create_classifier("nano", num_classes=2)).save(run / "model")
    export_model(run / "model", "hf", tmp_path / "hf")
    assert transformers.VideoMAEConfig.from_pretrained(tmp_path / "hf").id2label == {0: "left", 1: "right"}
    card = (tmp_path / "hf" / "README.md").read_text()
    assert str(shards) in card and '"loss": 0.25' in card and "postpretrain-tiny" in card
