"""The data-efficiency experiment's in-process measurements and its report (scripts/experiments.py drives).

- `heldout_reconstruction`: masked-reconstruction loss of each model on the val clips (never seen in pre-training),
  with masks fixed per clip (numpy.random.default_rng([seed, i])) so every model is scored on the same hidden tokens.
  Two scores: decoding every hidden token (dec_mask = enc_mask, VideoMAE V1 style: the only choice that scores all
  arms on the same tokens whatever their training decoder mask) and running cell 0.5 (the V2 training condition).
- `reconstruction_picture`: val clips, their masked input and each model's reconstruction, prediction alone and
  error (videomae/pictures.py: the reference-style reconstruction borrows the clip's own statistics, the other two
  views do not).
- `write_report`: results.json (every number, and `summary`: the headline, one value per seed), summary.md (the
  tables docs/results.md quotes) and the plots.
- `step_cost` (`python scripts/experiments_report.py step-cost PRESET DECODER BATCH STEPS [OVERRIDES]`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # files only; no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402

ENC_RATIO, DEC_RATIO = 0.9, 0.5  # the paper's tube and running-cell ratios, used for the held-out scores


# ---------------------------------------------------------------------------------------------- held-out clips
def _val_clips(path: str, limit: int) -> list[dict]:
    from videomae.shards import iter_clips

    rows = sorted(iter_clips(path, split="val"), key=lambda r: r["clip_id"])
    if len(rows) > limit:  # evenly over the sorted ids, so every class keeps a share
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, limit).round().astype(int)]
    return rows


def _clip_tensor(row: dict, num_frames: int, img_size: int):
    from trainer.evaluation import ViewSpec
    from videomae.transforms import eval_clip

    return eval_clip(ViewSpec(img_size, num_frames).frames(row["frames"]), img_size)[None]  # (1, 3, T, S, S)


def _masks(grid: tuple[int, int, int], seed: int, i: int):
    import torch

    from videomae.masks import running_cell_mask, tube_mask

    enc = tube_mask(grid, ENC_RATIO, 1, np.random.default_rng([seed, i]))  # (1, N) True = hidden
    rc = running_cell_mask(grid, DEC_RATIO, 1, np.random.default_rng([seed, i, 1]))  # (1, N) True = decoded
    return torch.from_numpy(enc), torch.from_numpy(rc)


def heldout_reconstruction(models: dict[str, Path], shards: str, seed: int, max_clips: int) -> dict:
    import torch

    from videomae.checkpoint import load_model

    torch.manual_seed(seed)
    rows = _val_clips(shards, max_clips)
    scores = {}
    for key, model_dir in models.items():
        model = load_model(str(model_dir)).eval()
        cfg = model.cfg
        full, rc = [], []
        with torch.no_grad():
            for i, row in enumerate(rows):
                clip = _clip_tensor(row, cfg.num_frames, cfg.img_size)
                enc, dec = _masks(cfg.grid, seed, i)
                full.append(float(model(clip, enc, enc)[0]))
                rc.append(float(model(clip, enc, dec)[0]))
        scores[key] = {"full": float(np.mean(full)), "full_sem": float(np.std(full, ddof=1) / np.sqrt(len(full))),
                       "running_cell": float(np.mean(rc)),
                       "running_cell_sem": float(np.std(rc, ddof=1) / np.sqrt(len(rc)))}
    return {"clips": len(rows), "seed": seed, "encoder_mask": f"tube {ENC_RATIO}",
            "scores": {"full": "dec_mask = enc_mask (every hidden token decoded)",
                       "running_cell": f"running cell {DEC_RATIO} (loss on hidden and decoded tokens)"},
            "models": scores}


def reconstruction_picture(models: dict[str, Path], shards: str, seed: int, n_clips: int, out: Path) -> Path:
    """Per clip: original and masked input, then per model its reconstruction (reference-style), its prediction
    alone and its error (videomae/pictures.py says what each shows); one column per tubelet."""
    import torch

    from videomae.checkpoint import load_model
    from videomae.pictures import LEGEND, panels

    rows = _val_clips(shards, 10_000)
    picks = np.linspace(0, len(rows) - 1, n_clips + 2)[1:-1].round().astype(int) if n_clips else []
    loaded = {k: load_model(str(v)).eval() for k, v in models.items()}
    cfg = next(iter(loaded.values())).cfg
    lines = []  # (title, (T, H, W, 3) float in [0, 1])
    with torch.no_grad():
        for i in picks:
            clip = _clip_tensor(rows[i], cfg.num_frames, cfg.img_size)[0]
            enc, _ = _masks(cfg.grid, seed, int(i))
            first = True
            for key, model in loaded.items():
                p = panels(model, clip, enc[0], enc[0])
                if first:
                    lines += [("val clip: original", p["original"]), (f"masked input (tube {ENC_RATIO})", p["masked"])]
                    first = False
                lines += [(f"{key}: reconstruction (loss {p['loss']:.3f})", p["reconstruction"]),
                          (f"{key}: prediction alone", p["prediction"]), (f"{key}: error", p["error"])]
    t = cfg.tubelet_size
    cols = cfg.num_frames // t
    fig, axes = plt.subplots(len(lines), cols, figsize=(1.25 * cols + 2.6, 1.25 * len(lines) + 1.2), squeeze=False)
    for r, (title, frames) in enumerate(lines):
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(frames[c * t])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=7)
            if r == 0:
                ax.set_title(f"frame {c * t}", fontsize=7)
    legend = "\n".join(f"{k}: {v}" for k, v in LEGEND.items() if k not in ("original", "masked"))
    fig.text(0.01, 0.005, legend, fontsize=6, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------------------------- report
def _mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def environment(root: Path) -> dict:
    import ray
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next((int(line.split()[1]) // 1024 ** 2 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), None)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    return {"python": sys.version.split()[0], "torch": torch.__version__, "ray": ray.__version__,
            "numpy": np.__version__, "platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(),
            "mem_gib": mem, "load_avg_at_report": os.getloadavg(), "git_commit": commit.stdout.strip(),
            "torch_threads": torch.get_num_threads()}


def collect(results: Path) -> dict:
    """Every unit's record, with what its run wrote (metrics.jsonl) folded in."""
    from trainer.metrics import read_metrics

    found = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json")) if p.stem != "results"}
    pre = {k: v for k, v in found.items() if k.startswith("pretrain-")}
    for rec in pre.values():
        rows = read_metrics(rec["run_dir"])
        rec["curve"] = [(r["step"], r["loss"]) for r in rows]
        rec["health"] = [{k: r[k] for k in ("step", "epoch", "heldout_loss", "heldout_loss_zero", "probe_top1")
                          if k in r} for r in rows if "heldout_loss" in r]
        rec["final_loss"] = float(np.mean([r["loss"] for r in rows[-3:]])) if rows else None
        steady = [r["step_time"] for r in rows[1:]] or [r["step_time"] for r in rows]
        rec["step_time_s"] = float(np.median(steady)) if steady else None
    fine = {k: v for k, v in found.items() if k.startswith("finetune-")}
    for rec in fine.values():
        rows = read_metrics(rec["run_dir"])
        val = [r for r in rows if "val_top1" in r]
        rec["curve"] = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        rec["val_curve"] = [(r["step"], r["val_top1"]) for r in val]
        rec["val_top1"] = val[-1]["val_top1"] if val else None
        rec["val_top5"] = val[-1].get("val_top5") if val else None
        rec["final_loss"] = float(np.mean([r["loss"] for r in rows[-3:]])) if rows else None
    probes = {v["model"]: v for k, v in found.items() if k.startswith("probes-")}
    costs = [v for k, v in found.items() if k.startswith("stepcost-")]
    return {"pretrain": pre, "finetune": fine, "probes": probes, "recon": found.get("recon"),
            "data": found.get("data"), "step_cost": costs}


def _pct(v):
    return None if v is None else round(100 * v, 2)


def summarise(c: dict, config: dict) -> dict:
    """The headline, one value per seed (percent): fine-tuned from each arm vs from scratch, frozen probes of each arm
    vs random-init encoders, the pre-training-length curve, and the arms' cost and reconstruction."""
    head = config["headline"]
    arms = [a["name"] for a in config["arms"]]
    recon = (c["recon"] or {}).get("models", {})

    def ft(init: str, variant: str | None = None) -> list[float]:
        return [_pct(r["val_top1"]) for r in sorted(c["finetune"].values(), key=lambda r: r["seed"])
                if r["init"] == init and r.get("variant") == variant]

    def probe(prefix: str, key: str) -> list[float]:
        recs = [v for k, v in sorted(c["probes"].items()) if k.rsplit("-s", 1)[0] == prefix]
        return [_pct(r[key]) for r in recs]

    chance = next((v["chance"] for v in c["probes"].values() if "chance" in v), None)
    out = {"chance": _pct(chance),
           "finetune_top1": {"pretrained": ft(head["pretrained"]), "scratch": ft("scratch"),
                             **{a: ft(a) for a in arms if ft(a)}},
           "linear_top1": {"pretrained": probe(head["pretrained"], "linear"), "random": probe("random", "linear"),
                           **{a: probe(a, "linear") for a in arms if probe(a, "linear")}},
           "knn_top1": {"pretrained": probe(head["pretrained"], "knn"), "random": probe("random", "knn"),
                        **{a: probe(a, "knn") for a in arms if probe(a, "knn")}},
           "heldout_recon": {k: v["full"] for k, v in recon.items()}}
    variants = config["finetune"].get("variants") or []
    if variants:  # the same comparison under other fine-tuning settings (say, a longer schedule)
        out["finetune_variants"] = {v["name"]: {i: ft(i, v["name"]) for i in v["inits"]} for v in variants}
    for key in ("finetune_top1", "linear_top1"):
        pre, base = out[key]["pretrained"], out[key]["scratch" if key == "finetune_top1" else "random"]
        if pre and base:
            out[key]["gap_of_means"] = round(float(np.mean(pre) - np.mean(base)), 2)
            out[key]["every_pretrained_above_every_baseline"] = bool(min(pre) > max(base))
    arm_rows = {}
    for a in arms:
        recs = [r for r in c["pretrain"].values() if r["arm"] == a]
        if not recs:
            continue
        arm_rows[a] = {"decoder": recs[0]["mask"]["decoder"], "seeds": [r["seed"] for r in recs],
                       "epochs": recs[0].get("epochs"), "flops_per_clip": recs[0]["flops_per_clip"]["total"],
                       "train_cpu_s": [r.get("train_worker_cpu_s") for r in recs],
                       "wall_s": [r["wall_s"] for r in recs], "final_train_loss": [r["final_loss"] for r in recs],
                       "heldout_recon": [recon.get(f"{a}-s{r['seed']}", {}).get("full") for r in recs]}
    out["arms"] = arm_rows
    pair = head.get("v1_pair") or head["pretrained"]
    if head.get("v1") in arm_rows and pair in arm_rows:
        rc, v1 = arm_rows[pair], arm_rows[head["v1"]]
        out["dual_masking"] = {"arms": [pair, head["v1"]], "flops_ratio": rc["flops_per_clip"] / v1["flops_per_clip"],
                               "train_cpu_s": {"running_cell": rc["train_cpu_s"], "v1": v1["train_cpu_s"]},
                               "final_train_loss": {"running_cell": rc["final_train_loss"],
                                                    "v1": v1["final_train_loss"]},
                               "heldout_recon": {"running_cell": rc["heldout_recon"], "v1": v1["heldout_recon"]},
                               "finetune_top1": {"running_cell": ft(pair), "v1": ft(head["v1"])},
                               "linear_top1": {"running_cell": probe(pair, "linear"),
                                               "v1": probe(head["v1"], "linear")},
                               "knn_top1": {"running_cell": probe(pair, "knn"), "v1": probe(head["v1"], "knn")}}
    curve = [{"arm": "none (random init)", "epochs": 0.0,
              "finetune_top1": _mean_sd(ft("scratch"))[0], "linear_top1": _mean_sd(probe("random", "linear"))[0],
              "knn_top1": _mean_sd(probe("random", "knn"))[0]}]
    for a in head.get("curve") or []:
        if a in arm_rows:
            s0 = min(arm_rows[a]["seeds"])
            curve.append({"arm": a, "epochs": arm_rows[a]["epochs"],
                          "finetune_top1": next(iter(ft(a)), None),
                          "linear_top1": next(iter(probe(a, "linear")), None),
                          "knn_top1": next(iter(probe(a, "knn")), None),
                          "heldout_recon": recon.get(f"{a}-s{s0}", {}).get("full")})
    out["curve"] = curve
    return out


def _fmt(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}g}"


def _seeds(values: list, digits: int = 1) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    mean, sd = _mean_sd(vals)
    return (" / ".join(f"{v:.{digits}f}" for v in vals) + f" (mean {mean:.{digits}f}"
            + (f" ± {sd:.{digits}f})" if sd else ")"))


def render(summary: dict) -> str:
    s = summary["summary"]
    lines = [f"Chance: {_fmt(s['chance'])} %. Values per seed, then mean ± sd over seeds.", "",
             "| top-1 (%) on held-out videos | per seed |", "|---|---|"]
    head = summary["config"]["headline"]["pretrained"]
    for key, title in (("finetune_top1", "fine-tuned"), ("linear_top1", "linear probe"), ("knn_top1", "k-NN")):
        for init, values in s[key].items():
            if isinstance(values, list) and init != head:  # the headline arm is the "pretrained" row
                name = f"pre-trained ({head})" if init == "pretrained" else init
                lines.append(f"| {title}: {name} | {_seeds(values)} |")
    for vname, inits in (s.get("finetune_variants") or {}).items():
        for init, values in inits.items():
            lines.append(f"| fine-tuned, {vname}: {init} | {_seeds(values)} |")
    lines += ["", "| pre-training arm | decoder mask | epochs | FLOPs/clip (M) | train CPU (s) | final train loss | "
                  "held-out recon |", "|---|---|---|---|---|---|---|"]
    for a, r in s["arms"].items():
        lines.append(f"| {a} | {r['decoder']} | {_fmt(r['epochs'], 4)} | {r['flops_per_clip'] / 1e6:.2f} | "
                     f"{_seeds(r['train_cpu_s'])} | {_fmt(_mean_sd(r['final_train_loss'])[0])} | "
                     f"{_fmt(_mean_sd(r['heldout_recon'])[0])} |")
    dm = s.get("dual_masking")
    if dm:
        rc, v1 = dm["arms"]
        lines += ["", f"Dual masking ({rc} against {v1}, the same schedule): {dm['flops_ratio']:.3f}x the FLOPs per "
                      f"clip; held-out reconstruction {_seeds(dm['heldout_recon']['running_cell'], 3)} against "
                      f"{_seeds(dm['heldout_recon']['v1'], 3)} (every hidden token decoded, fixed masks; lower is "
                      f"better); "
                      f"linear probe {_seeds(dm['linear_top1']['running_cell'])} % against "
                      f"{_seeds(dm['linear_top1']['v1'])} %."]
    lines += ["", "| pre-training length | epochs | fine-tuned top-1 (%) | linear top-1 (%) | k-NN top-1 (%) |",
              "|---|---|---|---|---|"]
    for p in s["curve"]:
        lines.append(f"| {p['arm']} | {_fmt(p['epochs'], 4)} | {_fmt(p['finetune_top1'])} | "
                     f"{_fmt(p['linear_top1'])} | {_fmt(p['knn_top1'])} |")
    if summary["step_cost"]:
        lines += ["", "| preset | batch | decoder mask | FLOPs/clip (G) | CPU s/step | step peak (MB) |",
                  "|---|---|---|---|---|---|"]
        for c in summary["step_cost"]:
            lines.append(f"| {c['preset']} | {c['batch']} | {c['decoder']} | {c['flops_per_clip'] / 1e9:.4g} | "
                         f"{c['cpu_s_per_step']:.3g} | {c['step_peak_mb']:.4g} |")
    env = summary["environment"]
    lines += ["", f"Machine: {env['cpu']}, {env['cpus']} CPUs, {env['mem_gib']} GiB; Python {env['python']}, "
                  f"torch {env['torch']}, Ray {env['ray']}; commit {env['git_commit']}."]
    return "\n".join(lines) + "\n"


def _save(fig, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_pretrain(c: dict, out: Path) -> None:
    """Training loss and the learning-health checks (held-out loss, probe) of every pre-training run."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    colours: dict[str, str] = {}
    for _, rec in sorted(c["pretrain"].items()):
        style = {"color": colours.setdefault(rec["arm"], f"C{len(colours)}"), "label": f"{rec['arm']} s{rec['seed']}",
                 "ls": ["-", "--", ":"][rec["seed"] % 3], "lw": 1}
        if rec["curve"]:
            axes[0].plot(*zip(*rec["curve"], strict=True), **style)
        h = rec["health"]
        if h:
            axes[1].plot([r["epoch"] for r in h], [r["heldout_loss"] for r in h], **style)
            if "probe_top1" in h[0]:
                axes[2].plot([r["epoch"] for r in h], [100 * r["probe_top1"] for r in h], **style)
    zero = [r["heldout_loss_zero"] for rec in c["pretrain"].values() for r in rec["health"]]
    if zero:
        axes[1].axhline(float(np.mean(zero)), color="k", lw=0.6, ls=":", label="predict nothing")
    axes[0].set(xlabel="step", ylabel="training loss (own decoded tokens)", title="pre-training loss")
    axes[1].set(xlabel="epoch", ylabel="held-out loss (every hidden token)", title="held-out reconstruction")
    axes[2].set(xlabel="epoch", ylabel="k-NN top-1 (%)", title="probe on frozen features")
    for ax in axes:
        ax.legend(fontsize=6)
    _save(fig, out)


def plot_curve(summary: dict, out: Path) -> None:
    """Downstream accuracy against pre-training length (0 = random init / from scratch)."""
    curve = summary["curve"]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for key, label in (("finetune_top1", "fine-tuned"), ("linear_top1", "linear probe"), ("knn_top1", "k-NN")):
        pts = [(p["epochs"], p[key]) for p in curve if p.get(key) is not None and p.get("epochs") is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
    if summary.get("chance"):
        ax.axhline(summary["chance"], color="k", lw=0.6, ls=":", label="chance")
    ax.set(xlabel="pre-training epochs", ylabel="top-1 on held-out videos (%)",
           title="downstream accuracy vs pre-training length")
    ax.set_xscale("symlog", linthresh=10)
    ax.legend(fontsize=7)
    _save(fig, out)


def plot_finetune(c: dict, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    colours: dict[str, str] = {}
    for _, rec in sorted(c["finetune"].items()):
        if rec["val_curve"]:
            kind = rec["init"] + (f" ({rec['variant']})" if rec.get("variant") else "")
            ax.plot(*zip(*[(s, 100 * v) for s, v in rec["val_curve"]], strict=True), marker=".",
                    color=colours.setdefault(kind, f"C{len(colours)}"), label=f"{kind} s{rec['seed']}",
                    linestyle="--" if rec.get("variant") else "-")
    ax.set(xlabel="fine-tuning step", ylabel="val top-1 per video (%)",
           title="fine-tuning on the labeled videos: from pre-trained vs from scratch")
    ax.legend(fontsize=7)
    _save(fig, out)


def write_report(results: Path, config: dict, root: Path) -> dict:
    c = collect(results)
    order = [(sc["preset"], d) for sc in config.get("step_cost", []) for d in sc["decoders"]]
    costs = sorted(c["step_cost"], key=lambda s: order.index((s["preset"], s["decoder"]))
                   if (s["preset"], s["decoder"]) in order else len(order))
    summary = {"summary": summarise(c, config), "step_cost": costs, "finetune": c["finetune"],
               "pretrain": c["pretrain"], "probes": c["probes"], "recon": c["recon"], "data": c["data"],
               "config": config, "environment": environment(root)}
    pictures = []
    if c["pretrain"]:
        plot_pretrain(c, results / "pretrain.png")
        pictures.append("pretrain.png")
    if len(summary["summary"]["curve"]) > 1:
        plot_curve(summary["summary"], results / "curve.png")
        pictures.append("curve.png")
    if c["finetune"]:
        plot_finetune(c, results / "finetune.png")
        pictures.append("finetune.png")
    if (results / "reconstruction.png").exists():
        pictures.append("reconstruction.png")
    summary["pictures"] = pictures
    (results / "results.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (results / "summary.md").write_text(render(summary))
    return summary


# ---------------------------------------------------------------------------------------------- step cost
def _vm(key: str) -> int:
    """This process's VmHWM / VmRSS in kB (/proc/self/status)."""
    lines = Path("/proc/self/status").read_text().splitlines()
    return next((int(line.split()[1]) for line in lines if line.startswith(key + ":")), 0)


def step_cost(preset: str, decoder: str, batch: int, steps: int, overrides: dict | None = None, seed: int = 0) -> dict:
    """Training steps of one model in this (fresh) process, one torch thread: CPU and wall time per step (median
    after one untimed step) and the step's peak memory: VmHWM after the steps minus VmHWM before the first (model,
    optimizer and clip already built), i.e. activations + gradients + AdamW state at their peak."""
    import time

    import torch

    from videomae import MaskingConfig, create_model, sample_masks
    from videomae.flops import masked_pretrain_flops

    torch.set_num_threads(1)  # CPU time then measures the step's own compute, not waiting for a shared core
    torch.manual_seed(seed)
    model = create_model(preset, **(overrides or {}))
    cfg = model.cfg
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    masking = MaskingConfig(encoder="tube", encoder_ratio=ENC_RATIO, decoder=decoder, decoder_ratio=DEC_RATIO)
    clip = torch.randn(batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size)
    enc, dec = (torch.from_numpy(m) for m in sample_masks(masking, cfg.grid, batch, np.random.default_rng(seed)))
    before = _vm("VmHWM")
    cpu, wall = [], []
    for i in range(steps + 1):
        c0, w0 = time.process_time(), time.perf_counter()
        model(clip, enc, dec)[0].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    return {"preset": preset, "overrides": overrides or {}, "decoder": decoder, "batch": batch, "steps": steps,
            "cpu_s_per_step": float(np.median(cpu)), "wall_s_per_step": float(np.median(wall)),
            "step_peak_mb": (_vm("VmHWM") - before) / 1024, "process_peak_mb": _vm("VmHWM") / 1024,
            "flops_per_clip": masked_pretrain_flops(cfg, masking).total}


if __name__ == "__main__":  # `... step-cost PRESET DECODER BATCH STEPS [OVERRIDES_JSON]`: one JSON line
    if len(sys.argv) not in (6, 7) or sys.argv[1] != "step-cost":
        raise SystemExit(__doc__)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(json.dumps(step_cost(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                               json.loads(sys.argv[6]) if len(sys.argv) == 7 else None)))
