"""The reproduction's measurements done in-process and its report (scripts/experiments.py drives).

- `heldout_reconstruction`: masked-reconstruction loss of each pre-trained model on the val clips of the mix, with
  masks fixed per clip (numpy.random.default_rng([seed, i])) so every arm is scored on the same hidden tokens. Two
  scores: decoding every hidden token (dec_mask = enc_mask, VideoMAE V1 style: the only choice that scores all arms on
  the same tokens whatever their training decoder mask) and running cell 0.5 (the V2 training condition).
- `reconstruction_picture`: a val clip, its masked input and each model's reconstruction (hidden patches predicted,
  un-normalised with the clip's own per-tubelet mean/std, as the reference's visualisation does).
- `write_report`: results.json (every number), summary.md (the tables docs/results.md quotes) and the plots.
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
    if len(rows) > limit:  # evenly over the sorted ids, so every source/class keeps a share
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


def heldout_reconstruction(models: dict[str, Path], mix: str, seed: int, max_clips: int) -> dict:
    import torch

    from videomae.checkpoint import load_model

    torch.manual_seed(seed)
    rows = _val_clips(mix, max_clips)
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


def reconstruction_picture(models: dict[str, Path], mix: str, seed: int, n_clips: int, out: Path) -> Path:
    import torch

    from videomae.checkpoint import load_model
    from videomae.targets import patchify, unnormalize, unnormalize_patches

    rows = _val_clips(mix, 10_000)
    picks = np.linspace(0, len(rows) - 1, n_clips + 2)[1:-1].round().astype(int) if n_clips else []
    loaded = {k: load_model(str(v)).eval() for k, v in models.items()}
    cfg = next(iter(loaded.values())).cfg
    t, p = cfg.tubelet_size, cfg.patch_size
    panels = []  # (title, (T, H, W, 3) float in [0, 1]) per row of the figure
    with torch.no_grad():
        for i in picks:
            clip = _clip_tensor(rows[i], cfg.num_frames, cfg.img_size)
            enc, _ = _masks(cfg.grid, seed, int(i))
            patches = patchify(unnormalize(clip), t, p)  # (1, N, tpp, 3)
            masked = patches.clone()
            masked[enc] = 0.5
            name = f"{rows[i]['source']} val clip"
            panels.append((f"{name}: original", _frames(patches, cfg.grid, t, p)))
            panels.append((f"masked input (tube {ENC_RATIO})", _frames(masked, cfg.grid, t, p)))
            for key, model in loaded.items():
                recon = patches.clone()
                recon[enc] = unnormalize_patches(model(clip, enc, enc)[1], clip, enc, t, p)[0]  # (N_dec, tpp, 3)
                panels.append((f"{key}", _frames(recon.clamp(0, 1), cfg.grid, t, p)))
    cols = cfg.num_frames // t
    fig, axes = plt.subplots(len(panels), cols, figsize=(1.3 * cols + 1.6, 1.3 * len(panels)), squeeze=False)
    for r, (title, frames) in enumerate(panels):
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(frames[c * t])
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=7)
            if r == 0:
                ax.set_title(f"frame {c * t}", fontsize=7)
    _save(fig, out)
    return out


def _frames(patches, grid, t: int, p: int) -> np.ndarray:
    from videomae.targets import unpatchify

    video = unpatchify(patches.flatten(2), grid, t, p)[0]  # (3, T, H, W)
    return video.permute(1, 2, 3, 0).clamp(0, 1).numpy()  # (T, H, W, 3)


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
    from trainer.metrics import read_metrics

    found = {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json")) if p.stem != "results"}
    pre = {k: v for k, v in found.items() if k.startswith("pretrain-")}
    for rec in pre.values():
        rows = read_metrics(rec["run_dir"])
        rec["curve"] = [(r["step"], r["loss"]) for r in rows]
        rec["final_loss"] = float(np.mean([r["loss"] for r in rows[-3:]])) if rows else None
        # The first logging window holds Ray Data's start-up and the first batch: steady state is the rest.
        steady = [r["step_time"] for r in rows[1:]] or [r["step_time"] for r in rows]
        rec["step_time_s"] = float(np.median(steady)) if steady else None
    fine = {k: v for k, v in found.items() if k.startswith("finetune-")}
    for rec in fine.values():
        rows = read_metrics(rec["run_dir"])
        val = [r for r in rows if "val_top1" in r] or read_metrics(rec["run_dir"], "val")
        rec["curve"] = [(r["step"], r["loss"]) for r in rows if "loss" in r]
        rec["val_top1"] = val[-1]["val_top1"] if val else None
        rec["val_top5"] = val[-1].get("val_top5") if val else None
        rec["final_loss"] = float(np.mean([r["loss"] for r in rows[-3:]])) if rows else None
    evals = {k: v for k, v in found.items() if k.startswith("eval-")}
    costs = [v for k, v in found.items() if k.startswith("stepcost-")]
    return {"pretrain": pre, "finetune": fine, "evaluate": evals, "recon": found.get("recon"),
            "data": found.get("data"), "step_cost": costs}


def arm_table(c: dict, order: list[str]) -> list[dict]:
    """One row per arm: costs and quality, mean (and sd where there are several seeds)."""
    recon = (c["recon"] or {}).get("models", {})
    arms: dict[str, list[dict]] = {name: [] for name in order}  # the config's order
    for rec in c["pretrain"].values():
        arms.setdefault(rec["arm"], []).append(rec)
    arms = {k: v for k, v in arms.items() if v}
    base_flops = next((r[0]["flops_per_clip"]["total"] for a, r in arms.items() if a == "none"), None)
    table = []
    for arm, recs in arms.items():
        keys = [f"{arm}-s{r['seed']}" for r in recs]
        knn = [e["top1"] for e in c["evaluate"].values() if e["mode"] == "knn" and e["model"] in keys]
        lin = [e["top1"] for e in c["evaluate"].values() if e["mode"] == "linear" and e["model"] in keys]
        row = {"arm": arm, "seeds": [r["seed"] for r in recs], "decoder": recs[0]["mask"]["decoder"],
               "flops_per_clip_M": recs[0]["flops_per_clip"]["total"] / 1e6,
               "flops_vs_none": recs[0]["flops_per_clip"]["total"] / base_flops if base_flops else None}
        for name, values in (("wall_s", [r["wall_s"] for r in recs]),
                             ("train_cpu_s", [r.get("train_worker_cpu_s") for r in recs]),
                             ("peak_rss_mb", [r.get("train_worker_peak_rss_mb") for r in recs]),
                             ("step_time_s", [r["step_time_s"] for r in recs]),
                             ("final_train_loss", [r["final_loss"] for r in recs]),
                             ("recon_full", [recon.get(k, {}).get("full") for k in keys]),
                             ("recon_running_cell", [recon.get(k, {}).get("running_cell") for k in keys]),
                             ("knn_top1", knn), ("linear_top1", lin)):
            row[name], row[name + "_sd"] = _mean_sd(values)
        table.append(row)
    return table


def _fmt(v, digits: int = 3, pct: bool = False) -> str:
    return "-" if v is None else f"{100 * v:.1f}" if pct else f"{v:.{digits}g}"


def _cell(row: dict, key: str, digits: int = 3, pct: bool = False) -> str:
    sd = row.get(key + "_sd")
    text = _fmt(row.get(key), digits, pct)
    return text + (f" ± {_fmt(sd, 2, pct)}" if sd is not None else "")


def render(summary: dict) -> str:
    lines = ["| arm (decoder mask) | seeds | FLOPs/clip (M) | vs none | wall (s) | train CPU (s) | step (s) | "
             "peak RSS (MB) | final train loss | held-out recon (full) | held-out recon (running cell) | "
             "k-NN top-1 (%) | linear top-1 (%) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["arms"]:
        lines.append(f"| {r['arm']} ({r['decoder']}) | {','.join(map(str, r['seeds']))} | "
                     f"{r['flops_per_clip_M']:.2f} | {_fmt(r['flops_vs_none'])} | {_cell(r, 'wall_s', 4)} | "
                     f"{_cell(r, 'train_cpu_s', 3)} | {_cell(r, 'step_time_s', 2)} | {_cell(r, 'peak_rss_mb', 4)} | "
                     f"{_cell(r, 'final_train_loss', 3)} | {_cell(r, 'recon_full', 3)} | "
                     f"{_cell(r, 'recon_running_cell', 3)} | {_cell(r, 'knn_top1', pct=True)} | "
                     f"{_cell(r, 'linear_top1', pct=True)} |")
    rand = summary["random_init"]
    lines += ["", "| frozen encoder | k-NN top-1 (%) | linear top-1 (%) |", "|---|---|---|"]
    for r in summary["arms"]:
        lines.append(f"| {r['arm']} | {_cell(r, 'knn_top1', pct=True)} | {_cell(r, 'linear_top1', pct=True)} |")
    lines.append(f"| random init | {_cell(rand, 'knn_top1', pct=True)} | {_cell(rand, 'linear_top1', pct=True)} |")
    lines += ["", "| classifier | seed | val top-1 (%) | val top-5 (%) | final train loss | wall (s) |",
              "|---|---|---|---|---|---|"]
    for _key, f in sorted(summary["finetune"].items()):
        lines.append(f"| {f['init']} | {f['seed']} | {_fmt(f['val_top1'], pct=True)} | "
                     f"{_fmt(f['val_top5'], pct=True)} | {_fmt(f['final_loss'])} | {f['wall_s']:.0f} |")
    if summary["step_cost"]:
        lines += ["", "| preset | batch | decoder mask | FLOPs/clip (G) | vs none | CPU s/step | vs none | "
                      "step peak (MB) | vs none |", "|---|---|---|---|---|---|---|---|---|"]
        base = {s["preset"]: s for s in summary["step_cost"] if s["decoder"] == "none"}
        for s in summary["step_cost"]:
            b = base.get(s["preset"])
            ratio = (lambda k, s=s, b=b: f"{s[k] / b[k]:.3f}" if b and b[k] else "-")  # noqa: E731
            lines.append(f"| {s['preset']} | {s['batch']} | {s['decoder']} | {s['flops_per_clip'] / 1e9:.4g} | "
                         f"{ratio('flops_per_clip')} | {s['cpu_s_per_step']:.3g} | {ratio('cpu_s_per_step')} | "
                         f"{s['step_peak_mb']:.4g} | {ratio('step_peak_mb')} |")
    env = summary["environment"]
    lines += ["", f"Machine: {env['cpu']}, {env['cpus']} CPUs, {env['mem_gib']} GiB; Python {env['python']}, "
                  f"torch {env['torch']}, Ray {env['ray']}; commit {env['git_commit']}."]
    return "\n".join(lines) + "\n"


def _save(fig, out: Path) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _plot_curves(lines: list[tuple[dict, dict]], ylabel: str, title: str, fontsize: int, out: Path) -> None:
    """Training-loss curves: (run record with its `curve`, matplotlib line options) per line."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for rec, style in lines:
        if rec["curve"]:
            ax.plot(*zip(*rec["curve"], strict=True), **style)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=fontsize)
    _save(fig, out)


def plot_pretrain(c: dict, out: Path) -> None:
    colours: dict[str, str] = {}
    lines = [(rec, {"color": colours.setdefault(rec["arm"], f"C{len(colours)}"),
                    "label": f"{rec['arm']} s{rec['seed']}", "ls": "-" if rec["seed"] == 0 else "--"})
             for _, rec in sorted(c["pretrain"].items()) if rec["curve"]]
    _plot_curves(lines, "training loss (on the arm's own decoded tokens)", "pre-training loss per arm (nano, tube 0.9)",
                 7, out)


def plot_finetune(c: dict, out: Path) -> None:
    lines = [(rec, {"label": f"{rec['init']} s{rec['seed']} (val top-1 {_fmt(rec['val_top1'], pct=True)}%)"})
             for _, rec in sorted(c["finetune"].items())]
    _plot_curves(lines, "training loss (cross-entropy, smoothing 0.1)",
                 "supervised training on the motion classes: pre-trained vs from scratch", 8, out)


def plot_costs(arms: list[dict], out: Path) -> None:
    """Each arm's cost and held-out loss relative to the V1 arm (none), the paper's Table 1 in miniature."""
    base = next((a for a in arms if a["arm"] == "none"), None)
    if base is None:
        return
    keys = [("flops_per_clip_M", "FLOPs"), ("train_cpu_s", "train CPU"), ("step_time_s", "step time"),
            ("peak_rss_mb", "peak RSS"), ("recon_full", "held-out loss")]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(len(arms), 1)
    for j, a in enumerate(arms):
        vals = [(a[k] / base[k]) if a.get(k) and base.get(k) else 0 for k, _ in keys]
        ax.bar(np.arange(len(keys)) + j * width, vals, width, label=a["arm"])
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_xticks(np.arange(len(keys)) + width * (len(arms) - 1) / 2, [n for _, n in keys])
    ax.set_ylabel("relative to none (V1)")
    ax.legend(fontsize=7)
    _save(fig, out)


def write_report(results: Path, runs: Path, config: dict, root: Path) -> dict:
    c = collect(results)
    rand = [e for e in c["evaluate"].values() if e["model"] == "random_init"]
    rand_row = {}
    for mode in ("knn", "linear"):
        rand_row[f"{mode}_top1"], rand_row[f"{mode}_top1_sd"] = _mean_sd([e["top1"] for e in rand
                                                                          if e["mode"] == mode])
    order = [(sc["preset"], d) for sc in config.get("step_cost", []) for d in sc["decoders"]]
    costs = sorted(c["step_cost"], key=lambda s: order.index((s["preset"], s["decoder"]))
                   if (s["preset"], s["decoder"]) in order else len(order))
    summary = {"arms": arm_table(c, [a["name"] for a in config["arms"]]), "random_init": rand_row,
               "step_cost": costs,
               "finetune": c["finetune"], "pretrain": c["pretrain"],
               "evaluate": c["evaluate"], "recon": c["recon"], "data": c["data"], "config": config,
               "environment": environment(root)}
    pictures = []
    if c["pretrain"]:
        plot_pretrain(c, results / "pretrain_loss.png")
        plot_costs(summary["arms"], results / "costs.png")
        pictures += ["pretrain_loss.png"] + (["costs.png"] if (results / "costs.png").exists() else [])
    if c["finetune"]:
        plot_finetune(c, results / "finetune_loss.png")
        pictures.append("finetune_loss.png")
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


def step_cost(preset: str, decoder: str, batch: int, steps: int, seed: int = 0) -> dict:
    """Training steps of one model in this (fresh) process, one torch thread: CPU and wall time per step (median
    after one untimed step) and the step's peak memory: VmHWM after the steps minus VmHWM before the first (model,
    optimizer and clip already built), i.e. activations + gradients + AdamW state at their peak."""
    import time

    import torch

    from videomae import MaskingConfig, create_model, sample_masks
    from videomae.flops import masked_pretrain_flops

    torch.set_num_threads(1)  # CPU time then measures the step's own compute, not waiting for a shared core
    torch.manual_seed(seed)
    model = create_model(preset)
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
    return {"preset": preset, "decoder": decoder, "batch": batch, "steps": steps,
            "cpu_s_per_step": float(np.median(cpu)), "wall_s_per_step": float(np.median(wall)),
            "step_peak_mb": (_vm("VmHWM") - before) / 1024, "process_peak_mb": _vm("VmHWM") / 1024,
            "flops_per_clip": masked_pretrain_flops(cfg, masking).total}


if __name__ == "__main__":  # `python scripts/experiments_report.py step-cost PRESET DECODER BATCH STEPS`: one JSON line
    if len(sys.argv) != 6 or sys.argv[1] != "step-cost":
        raise SystemExit(__doc__)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    print(json.dumps(step_cost(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))
