"""Export parity and ONNX Runtime vs torch, in one run: what docs/model.md "Export" reports.

    python bench/export.py [--preset nano] [--parts parity speed] [--threads 2] [--repeats 10] [--batches 1 8]
                           [--json out.json]

1. Parity: every model kind (pretrain, classifier, encoder) of the preset, its weights perturbed off their init (so no
   bias is zero), exported to every format (videomae.export) and run by the real client: `transformers`
   (from_pretrained), the reference's model code rebuilt from reading it (reference_step.py, strict load_state_dict)
   and ONNX Runtime; the max abs difference from our model on real clips (ffmpeg's testsrc2 through eval_clip), per
   output: hidden states, pooled features, logits, the V1 pre-training loss (HF) and the dual-masked prediction (the
   reference). HF rows come twice: at the preset's head eps (1e-6, which HF fixes at 1e-5: the export's
   `head_norm_eps` line) and at 1e-5 (what HF holds exactly). Round trips (`load_model` of the export) are checked
   bit for bit.
2. Speed: pooled features (what /v1/embed returns) of the classifier, torch eager vs ONNX Runtime (CPU provider, the
   same thread count), batch 1 and 8, alternating, median ms per call and clips/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import reference_step
import torch
import transformers
from tables import table

import videomae
from videomae import MaskingConfig, sample_masks
from videomae.export import export_model
from videomae.masks import tube_mask
from videomae.transforms import eval_clip

KINDS = {"pretrain": transformers.VideoMAEForPreTraining, "classifier": transformers.VideoMAEForVideoClassification,
         "encoder": transformers.VideoMAEModel}


def real_clips(batch: int, frames: int, size: int) -> torch.Tensor:
    w, h = size * 3 // 2, size
    raw = subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate=25",
                          "-frames:v", str(batch * frames), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         check=True, capture_output=True).stdout
    video = np.frombuffer(raw, np.uint8).reshape(batch, frames, h, w, 3).copy()
    return torch.stack([eval_clip(v, size) for v in video])


def build(kind: str, preset: str, **kw) -> torch.nn.Module:
    if kind == "pretrain":
        model = videomae.create_model(preset, **kw)
    else:
        model = videomae.create_classifier(preset, num_classes=10 if kind == "classifier" else 0,
                                           **({"use_mean_pooling": False} if kind == "encoder" else {}), **kw)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.eval()


def diff(a: torch.Tensor, b: torch.Tensor | np.ndarray) -> str:
    return f"{(a - torch.as_tensor(b)).abs().max().item():.1e}"


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def hf_rows(kind: str, ours: torch.nn.Module, x: torch.Tensor, out: Path) -> list[dict]:
    done = export_model(ours, "hf", out)
    hf = KINDS[kind].from_pretrained(out).eval()
    px = x.permute(0, 2, 1, 3, 4)
    eps = f"{ours.cfg.head_eps:g}"
    with torch.no_grad():
        hidden = (hf if kind == "encoder" else hf.videomae)(px).last_hidden_state
        rows = {"hidden states": diff(hidden, ours.forward_features(x))}
        if kind == "pretrain":
            enc = torch.from_numpy(tube_mask(ours.cfg.grid, 0.9, len(x), 0))
            o = hf(px, bool_masked_pos=enc)
            loss, pred = ours(x, enc, enc)
            rows |= {"pooled": diff(hidden.mean(1), ours.forward_pooled(x)), "prediction (V1)": diff(o.logits, pred),
                     "loss (V1)": diff(o.loss, loss)}
        elif kind == "classifier":
            rows |= {"pooled": diff(hf.fc_norm(hidden.mean(1)), ours.forward_pooled(x)),
                     "logits": diff(hf(px).logits, ours(x))}
        else:
            rows["pooled"] = diff(hidden.mean(1), ours.forward_pooled(x))
    rt = same(videomae.load_model(out), ours)
    return [{"format": "hf", "kind": kind, "head eps": eps, "output": k, "max abs diff": v, "round trip": rt,
             "notes": len(done.notes)} for k, v in rows.items()]


def reference_rows(kind: str, ours: torch.nn.Module, x: torch.Tensor, out: Path) -> list[dict]:
    export_model(ours, "reference", out)
    state = torch.load(out / "model.pth", weights_only=True)["model"]
    with torch.no_grad():
        if kind == "pretrain":
            ref = reference_step.ReferencePretrain(ours.cfg).eval()
            ref.load_state_dict(state, strict=True)
            enc, dec = (torch.from_numpy(m) for m in sample_masks(MaskingConfig(), ours.cfg.grid, len(x), 0))
            rows = {"prediction (dual)": diff(ref(x, enc, dec), ours(x, enc, dec)[1])}
        elif kind == "classifier":
            ref = reference_step.ReferenceClassifier(ours.cfg).eval()
            ref.load_state_dict(state, strict=True)
            rows = {"pooled": diff(ref.forward_features(x), ours.forward_pooled(x)), "logits": diff(ref(x), ours(x))}
        else:
            ref = reference_step.Encoder(ours.cfg).eval()
            ref.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items()}, strict=True)
            no_mask = torch.zeros(len(x), ours.cfg.num_patches, dtype=torch.bool)
            rows = {"hidden states": diff(ref(x, no_mask), ours.forward_features(x))}
    rt = same(videomae.load_model(out), ours)
    return [{"format": "reference", "kind": kind, "head eps": f"{ours.cfg.head_eps:g}", "output": k,
             "max abs diff": v, "round trip": rt, "notes": 0} for k, v in rows.items()]


def onnx_session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_rows(kind: str, ours: torch.nn.Module, x: torch.Tensor, out: Path, threads: int) -> list[dict]:
    done = export_model(ours, "onnx", out)
    outputs = onnx_session(out / "model.onnx", threads).run(None, {"clip": x.numpy()})
    with torch.no_grad():
        rows = {"pooled": diff(ours.forward_pooled(x), outputs[0])}
        if kind == "classifier":
            rows["logits"] = diff(ours(x), outputs[1])
    return [{"format": "onnx", "kind": kind, "head eps": f"{ours.cfg.head_eps:g}", "output": k, "max abs diff": v,
             "round trip": "-", "notes": len(done.notes)} for k, v in rows.items()]


def speed(model: torch.nn.Module, session: onnxruntime.InferenceSession, clips: torch.Tensor, batches: list[int],
          repeats: int) -> list[dict]:
    rows = []
    for b in batches:
        x = clips[:b]
        times = {"torch": [], "onnxruntime": []}
        with torch.no_grad():
            model.forward_pooled(x), session.run(["features"], {"clip": x.numpy()})  # warm-up
            for _ in range(repeats):  # alternating, so other load on the machine hits both alike
                t = time.perf_counter()
                model.forward_pooled(x)
                times["torch"].append(time.perf_counter() - t)
                t = time.perf_counter()
                session.run(["features"], {"clip": x.numpy()})
                times["onnxruntime"].append(time.perf_counter() - t)
        base = statistics.median(times["torch"])
        for engine, ts in times.items():
            med = statistics.median(ts)
            rows.append({"batch": b, "engine": engine, "median ms": f"{med * 1e3:.1f}", "clips/s": f"{b / med:.1f}",
                         "vs torch": f"{base / med:.2f}x"})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="nano")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--parts", nargs="+", choices=["parity", "speed"], default=["parity", "speed"])
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = videomae.VideoMAEConfig.from_preset(a.preset)
    clips = real_clips(max(a.batches), cfg.num_frames, cfg.img_size)
    x = clips[:2]
    parity, fast = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if "parity" in a.parts:
            for kind in KINDS:
                for eps in (None, 1e-5):
                    parity += hf_rows(kind, build(kind, a.preset, head_norm_eps=eps), x, Path(tmp) / f"hf-{kind}-{eps}")
                parity += reference_rows(kind, build(kind, a.preset), x, Path(tmp) / f"ref-{kind}")
                parity += onnx_rows(kind, build(kind, a.preset), x, Path(tmp) / f"onnx-{kind}", a.threads)
            print(f"parity, {a.preset}, 2 real clips, fp32 (max abs difference from our model)")
            print(table(parity))
        if "speed" in a.parts:
            clf = build("classifier", a.preset)
            if not (Path(tmp) / "onnx-classifier").exists():
                export_model(clf, "onnx", Path(tmp) / "onnx-classifier")
            session = onnx_session(Path(tmp) / "onnx-classifier" / "model.onnx", a.threads)
            fast = speed(clf, session, clips, a.batches, a.repeats)
            print(f"\npooled features (/v1/embed's forward), {a.preset}, {a.threads} threads, "
                  f"torch {torch.__version__} vs onnxruntime {onnxruntime.__version__}, median of {a.repeats}")
            print(table(fast))
    if a.json:
        a.json.write_text(json.dumps({"preset": a.preset, "threads": a.threads, "parity": parity, "speed": fast},
                                     indent=1))


if __name__ == "__main__":
    main()
