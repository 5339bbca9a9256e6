"""What holds small-scale pre-training back: each factor measured in one process, fast enough to try many.

    python bench/learning.py --study data          # one study (a list of variants); results appended, resumable
    python bench/learning.py --study all --json data/bench-learning/learning.json
    python bench/learning.py --list                # the studies and their variants

The same model, masks, targets, optimizer, schedule, probes and classifier init as the services (videomae,
trainer.optim, trainer.evaluation), without Ray, Parquet or JPEG: videos are rendered straight into memory by the
generators ingest uses (ingest.objects_data.render, ingest.sample_data.render_motion) and cut into clips as the
experiment's ingest config does (8 frames at stride 2, two clips per video). What it measures per variant:
pre-train for `steps` on the unlabeled pool + labeled train clips (labels unused), snapshots on the way; then for
the final model and each snapshot the held-out reconstruction loss, k-NN, linear and attentive probes on frozen
features (fit on the labeled train clips, scored on held-out val clips); then fine-tuning from it and from scratch
(same steps, lr, seeds), top-1 per held-out video. scripts/experiments.py runs the chosen recipe through the real
services; this bench is how the recipe was chosen (docs/results.md "What held learning back"). Every variant is one
line of `--json` (JSON lines); a rerun skips the variants already there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import OptimSection  # noqa: E402
from trainer.evaluation import attentive_probe_accuracy, knn_accuracy, linear_probe_accuracy  # noqa: E402
from trainer.optim import Schedule, build_optimizer, set_lr  # noqa: E402
from videomae.augment import train_frames  # noqa: E402
from videomae.checkpoint import init_classifier_from_pretrain  # noqa: E402
from videomae.config import VideoMAEConfig  # noqa: E402
from videomae.masks import MaskingConfig, sample_masks  # noqa: E402
from videomae.model import VideoMAEClassifier, VideoMAEPretrain  # noqa: E402
from videomae.transforms import eval_clip, frames_to_input  # noqa: E402

CLIP_FRAMES, CLIP_STRIDE = 8, 2


@dataclass(frozen=True)
class Data:
    kind: str = "objects"  # objects (ingest.objects_data) | motion (the sample set's shape on a colour ramp)
    look: dict = field(default_factory=dict)  # ingest.objects_data.Look fields
    train: int = 12  # labeled train videos per class
    val: int = 24  # held-out videos per class
    pool: int = 1600  # unlabeled videos
    seed: int = 0


@dataclass(frozen=True)
class Variant:
    name: str
    data: Data = Data()
    overrides: dict = field(default_factory=lambda: {"patch_size": 8})  # on the nano preset
    steps: int = 4000
    batch: int = 32
    lr: float = 1.5e-3
    warmup: int = 200
    weight_decay: float = 0.05
    decoder: str = "running_cell"
    snapshots: tuple[int, ...] = ()
    ft_steps: int = 600
    ft_lr: float = 1e-3
    ft_layer_decay: float = 1.0
    ft_drop_path: float = 0.0
    ft_mixup: float = 0.0
    ft_seeds: tuple[int, ...] = (0, 1)
    seed: int = 0
    compile: bool = True  # inductor: ~2x the nano step on this CPU after a compile of a few minutes


# ---------------------------------------------------------------------------------------------- data
def render_videos(d: Data, cache: Path | None) -> tuple[np.ndarray, list[tuple[str, str, int]]]:
    """(clips (n, 8, 64, 64, 3) uint8, meta [(video id, split, label or -1)]): two clips per video, evenly spaced;
    cached in `cache` (an .npz per data spec) so variants of one data set render it once."""
    key = json.dumps(asdict(d), sort_keys=True)
    path = None
    if cache is not None:
        import hashlib

        path = cache / f"clips-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
        if path.exists():
            z = np.load(path, allow_pickle=False)
            return z["clips"], [(v, s, int(y)) for v, s, y in zip(z["video"], z["split"], z["label"], strict=True)]
    from ingest.objects_data import CLASSES, look_from_json, render
    from ingest.sample_data import render_motion

    look = look_from_json(json.dumps(d.look))
    clips, meta = [], []

    def add(label: str, seed: list[int], split: str, vid: str, y: int) -> None:
        rng = np.random.default_rng(seed)
        f = render(label, look, rng) if d.kind == "objects" else render_motion(label, 64, look.seconds, look.fps, rng)
        span = CLIP_FRAMES * CLIP_STRIDE
        for start in np.linspace(0, len(f) - span, 2).round().astype(int):
            clips.append(f[start:start + span:CLIP_STRIDE])
            meta.append((vid, split, y))

    for s, (split, count) in enumerate((("train", d.train), ("val", d.val))):  # the seeds objects_data uses
        for c, label in enumerate(CLASSES):
            for k in range(count):
                add(label, [d.seed, 1, s, c, k], split, f"{split}-{c}-{k}", c)
    for k in range(d.pool):
        label = CLASSES[int(np.random.default_rng([d.seed, 2, k, 0]).integers(len(CLASSES)))]
        add(label, [d.seed, 2, k], "train", f"pool-{k}", -1)
    x = np.stack(clips)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, clips=x, video=[m[0] for m in meta], split=[m[1] for m in meta], label=[m[2] for m in meta])
    return x, meta


# ---------------------------------------------------------------------------------------------- training
def _batches(rng: np.random.Generator, idx: np.ndarray, batch: int):
    while True:
        order = rng.permutation(idx)
        for i in range(0, len(order) - batch + 1, batch):
            yield order[i:i + batch]


def pretrain(v: Variant, x: np.ndarray, pool: np.ndarray, log) -> tuple[VideoMAEPretrain, dict, dict]:
    torch.manual_seed(v.seed)
    model = VideoMAEPretrain(VideoMAEConfig.from_preset("nano", **v.overrides))
    cfg = model.cfg
    opt = build_optimizer(model, OptimSection(lr=v.lr, weight_decay=v.weight_decay, betas=(0.9, 0.95)))
    sched = Schedule(v.lr, 1e-5, 0.0, v.warmup, v.steps)
    step_fn = torch.compile(model) if v.compile else model
    masking = MaskingConfig(encoder="tube", encoder_ratio=0.9, decoder=v.decoder, decoder_ratio=0.5)
    rng = np.random.default_rng(v.seed)
    losses, snaps, t0 = [], {}, time.perf_counter()
    for step, b in zip(range(v.steps), _batches(rng, pool, v.batch), strict=False):
        clip = frames_to_input(torch.from_numpy(np.stack([train_frames(x[i], cfg.img_size, rng) for i in b])))
        enc, dec = (torch.from_numpy(m) for m in sample_masks(masking, cfg.grid, len(b), rng))
        set_lr(opt, sched(step))
        loss, _ = step_fn(clip, enc, dec)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if (step + 1) % 500 == 0:
            log(f"  pre-train step {step + 1}/{v.steps}: loss {np.mean(losses[-100:]):.4f} "
                f"({time.perf_counter() - t0:.0f} s)")
        if step + 1 in v.snapshots:
            snaps[step + 1] = {k: t.clone() for k, t in model.state_dict().items()}
    info = {"final_loss": float(np.mean(losses[-200:])), "wall_s": time.perf_counter() - t0,
            "epochs": v.steps * v.batch / len(pool)}
    return model, snaps, info


@torch.no_grad()
def _tokens(model, x: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    model.eval()
    out = torch.cat([model.forward_features(torch.stack([eval_clip(x[i], model.cfg.img_size) for i in idx[s:s + 64]]))
                     for s in range(0, len(idx), 64)])
    model.train()
    return out  # (n, N, C)


@torch.no_grad()
def heldout_loss(model, x: np.ndarray, idx: np.ndarray, seed: int = 1234) -> float:
    model.eval()
    total = 0.0
    masking = MaskingConfig(encoder="tube", encoder_ratio=0.9, decoder="none")
    for s in range(0, len(idx), 64):
        part = idx[s:s + 64]
        clip = torch.stack([eval_clip(x[i], model.cfg.img_size) for i in part])
        enc = torch.from_numpy(np.concatenate([sample_masks(masking, model.cfg.grid, 1, np.random.default_rng(
            [seed, int(i)]))[0] for i in part]))
        total += float(model(clip, enc, enc)[0]) * len(part)
    model.train()
    return total / len(idx)


def probes(model, x: np.ndarray, tr: np.ndarray, va: np.ndarray, ytr: torch.Tensor, yva: torch.Tensor) -> dict:
    a, b = _tokens(model, x, tr), _tokens(model, x, va)
    return {"heldout_loss": heldout_loss(model, x, va),
            "knn": 100 * knn_accuracy(a.mean(1), ytr, b.mean(1), yva, 20, 0.07, 8),
            "linear": 100 * float(np.mean([linear_probe_accuracy(a.mean(1), ytr, b.mean(1), yva, 8, 100, 1e-2, s)
                                           for s in range(3)])),
            "attentive": 100 * float(np.mean([attentive_probe_accuracy(a, ytr, b, yva, 8, 60, 1e-3, s)
                                              for s in range(2)]))}


def finetune(v: Variant, x, tr, va, ytr, yva, videos, init: dict | None, seed: int) -> float:
    """Fine-tune the classifier (from `init`, a pre-training state, or from scratch); top-1 (%) per held-out video,
    its clips' probabilities averaged."""
    torch.manual_seed(seed)
    clf = VideoMAEClassifier(VideoMAEConfig.from_preset("nano", num_classes=8, drop_path_rate=v.ft_drop_path,
                                                        **v.overrides))
    if init is not None:
        pre = VideoMAEPretrain(VideoMAEConfig.from_preset("nano", **v.overrides))
        pre.load_state_dict(init)
        clf = init_classifier_from_pretrain(clf, pre)
    opt = build_optimizer(clf, OptimSection(lr=v.ft_lr, weight_decay=0.05, betas=(0.9, 0.999),
                                            layer_decay=v.ft_layer_decay))
    sched = Schedule(v.ft_lr, 1e-5, 0.0, 50, v.ft_steps)
    step_fn = torch.compile(clf) if v.compile else clf
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    mixup = None
    if v.ft_mixup > 0:
        from timm.data import Mixup
        from timm.loss import SoftTargetCrossEntropy

        mixup = Mixup(mixup_alpha=v.ft_mixup, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=8)
        criterion = SoftTargetCrossEntropy()
    rng = np.random.default_rng(seed)
    for step, b in zip(range(v.ft_steps), _batches(rng, np.arange(len(tr)), v.batch), strict=False):
        clip = frames_to_input(torch.from_numpy(np.stack([train_frames(x[tr[i]], 64, rng, (1.0,)) for i in b])))
        y = ytr[b]
        if mixup is not None:
            n, c, t, h, w = clip.shape
            folded, y = mixup(clip.reshape(n, c * t, h, w), y)
            clip = folded.reshape(n, c, t, h, w)
        set_lr(opt, sched(step))
        criterion(step_fn(clip), y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    clf.eval()
    with torch.no_grad():
        probs = torch.cat([clf(torch.stack([eval_clip(x[i], 64) for i in va[s:s + 64]])).softmax(-1)
                           for s in range(0, len(va), 64)])
    per_video: dict[str, list] = {}
    for p, vid, y in zip(probs, videos, yva.tolist(), strict=True):
        per_video.setdefault(vid, [torch.zeros_like(p), y])[0] += p
    return 100 * float(np.mean([int(p.argmax()) == y for p, y in per_video.values()]))


def run_variant(v: Variant, cache: Path | None, log) -> dict:
    x, meta = render_videos(v.data, cache)
    split = np.array([m[1] for m in meta])
    label = np.array([m[2] for m in meta])
    videos = np.array([m[0] for m in meta])
    tr, va = np.where((split == "train") & (label >= 0))[0], np.where(split == "val")[0]
    pool = np.where(split == "train")[0]
    ytr, yva = torch.tensor(label[tr]), torch.tensor(label[va])
    out: dict = {"variant": asdict(v), "clips": {"pool": len(pool), "train": len(tr), "val": len(va)}}
    torch.manual_seed(1000 + v.seed)
    out["random"] = probes(VideoMAEPretrain(VideoMAEConfig.from_preset("nano", **v.overrides)), x, tr, va, ytr, yva)
    log(f"  random init: {_short(out['random'])}")
    if v.steps:
        model, snaps, out["pretrain"] = pretrain(v, x, pool, log)
        out["pretrained"] = probes(model, x, tr, va, ytr, yva)
        log(f"  pre-trained ({out['pretrain']['epochs']:.0f} epochs): {_short(out['pretrained'])}")
        out["snapshots"] = {}
        for step, state in snaps.items():
            m = VideoMAEPretrain(model.cfg)
            m.load_state_dict(state)
            out["snapshots"][step] = {"epochs": step * v.batch / len(pool), **probes(m, x, tr, va, ytr, yva)}
            log(f"  step {step}: {_short(out['snapshots'][step])}")
    state = model.state_dict() if v.steps else None
    out["finetune"] = {"pretrained": [], "scratch": []}
    for seed in v.ft_seeds:
        if state is not None:
            out["finetune"]["pretrained"].append(finetune(v, x, tr, va, ytr, yva, videos[va], state, seed))
        out["finetune"]["scratch"].append(finetune(v, x, tr, va, ytr, yva, videos[va], None, seed))
        log(f"  fine-tune seed {seed}: pre-trained {out['finetune']['pretrained'][-1:]} scratch "
            f"{out['finetune']['scratch'][-1]:.1f}")
    return out


def _short(p: dict) -> str:
    return " ".join(f"{k} {v:.3g}" for k, v in p.items())


# ---------------------------------------------------------------------------------------------- studies
SWARM = Data(look={"objects": [4, 6], "sprite_scale": [0.14, 0.24], "sprite_cells": 2, "bg_ramp": 1.0,
                   "bg_contrast": [0.0, 0.0]})
PHOTO_SWARM = Data(look={"objects": [4, 6], "sprite_scale": [0.14, 0.24], "bg_zoom": [0.1, 0.3],
                         "sprite_zoom": [0.08, 0.2], "bg_contrast": [0.5, 0.8]})
BASE = Variant("base", data=SWARM, snapshots=(1000, 2000))
STUDIES: dict[str, list[Variant]] = {
    "data": [replace(BASE, name="motion (the sample set's one shape on a colour ramp)", data=Data(kind="motion")),
             replace(BASE, name="photo swarm (4-6 photo-textured sprites on a photo)", data=PHOTO_SWARM),
             replace(BASE, name="swarm (4-6 flat-coloured sprites on a colour ramp)")],
    "grid": [replace(BASE, name="patch 16: 4x4x4 = 64 tokens", overrides={}),
             replace(BASE, name="patch 8: 4x8x8 = 256 tokens")],
    # the whole path in seconds (tests/bench/test_learning_bench.py): not a measurement
    "smoke": [Variant("smoke", data=replace(SWARM, train=1, val=1, pool=2), steps=3, batch=4, warmup=1,
                      snapshots=(2,), ft_steps=2, ft_seeds=(0,), compile=False)],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="all", help=f"one of {', '.join(STUDIES)}, or all")
    ap.add_argument("--json", type=Path, default=Path("data/bench-learning/learning.jsonl"))
    ap.add_argument("--cache", type=Path, default=Path("data/bench-learning"), help="rendered clips (.npz)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    if args.list:
        for name, variants in STUDIES.items():
            print(name, *(f"  - {v.name}" for v in variants), sep="\n")
        return 0
    torch.set_num_threads(args.threads)
    studies = [s for s in STUDIES if s != "smoke"] if args.study == "all" else [args.study]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["study"], r["variant"]["name"]) for r in map(json.loads, args.json.read_text().splitlines())} \
        if args.json.exists() else set()
    for study in studies:
        for v in STUDIES[study]:
            if (study, v.name) in done:
                continue
            print(f"[{study}] {v.name}", flush=True)
            result = {"study": study, **run_variant(v, args.cache, lambda m: print(m, flush=True))}
            with args.json.open("a") as fh:
                fh.write(json.dumps(result) + "\n")
    print_tables(args.json)
    return 0


def _join(values: list[float]) -> str:
    return " / ".join(f"{a:.1f}" for a in values) or "-"


def print_tables(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    print("| study | variant | epochs | held-out loss | k-NN | linear | attentive | fine-tuned | scratch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p, rnd, f = r.get("pretrained", {}), r["random"], r["finetune"]
        print(f"| {r['study']} | {r['variant']['name']} | {r.get('pretrain', {}).get('epochs', 0):.0f} | "
              f"{p.get('heldout_loss', rnd['heldout_loss']):.3f} ({rnd['heldout_loss']:.3f}) | "
              f"{p.get('knn', 0):.1f} ({rnd['knn']:.1f}) | {p.get('linear', 0):.1f} ({rnd['linear']:.1f}) | "
              f"{p.get('attentive', 0):.1f} ({rnd['attentive']:.1f}) | {_join(f['pretrained'])} | "
              f"{_join(f['scratch'])} |")
    print("(in brackets: the random-init encoder)")


if __name__ == "__main__":
    sys.exit(main())
