"""Training-step benchmark of the pre-training model: dual masking vs VideoMAE V1, SDPA vs explicit attention.

    python bench/model_step.py --presets tiny,base --batch 1 --steps 3 --json docs/bench/model_step.json

For each preset, at its own clip size, one model and one AdamW optimizer time full training steps (masks drawn,
forward, backward, optimizer step) in four settings:
- decoder masking: running cell 0.5 (V2, dual masking) vs none (V1: the decoder predicts every hidden token),
- attention: `Attention.fused=True` (F.scaled_dot_product_attention, ours) vs `False` (the reference's explicit
  softmax(q k^T) v).
Settings are interleaved step by step (round robin), so drift from other work on the machine hits all four alike;
each setting reports the median of `--steps` timed steps after `--warmup` untimed ones, as wall time and as this
process's CPU time. On a machine shared with other jobs the wall time mostly measures waiting for a core; with
`--threads 1` the CPU time is the step's own compute, so the ratios (settings of the same run only) use CPU time
when `--threads 1` and wall time otherwise. The table also gives the analytic forward FLOPs per clip
(videomae.flops, fvcore convention, which reproduces the paper's 35.48G / 25.87G for ViT-B).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain file from the repository root

from videomae import MaskingConfig, create_model, sample_masks  # noqa: E402
from videomae.flops import masked_pretrain_flops  # noqa: E402
from videomae.layers import Attention  # noqa: E402

MASKINGS = {
    "V1 (no dec. mask)": MaskingConfig(decoder="none"),
    "V2 running cell 0.5": MaskingConfig(decoder="running_cell", decoder_ratio=0.5),
}
ATTENTION = {"sdpa": True, "explicit": False}


def set_fused(model: torch.nn.Module, fused: bool) -> None:
    for m in model.modules():
        if isinstance(m, Attention):
            m.fused = fused


def bench_preset(name: str, batch: int, steps: int, warmup: int, seed: int, by_cpu: bool) -> list[dict]:
    torch.manual_seed(seed)
    model = create_model(name).train()
    cfg = model.cfg
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, weight_decay=0.05)
    clip = torch.randn(batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size)  # (B, 3, T, H, W)
    rng = np.random.default_rng(seed)
    settings = [(m, a) for m in MASKINGS for a in ATTENTION]
    times: dict[tuple[str, str], list[float]] = {s: [] for s in settings}
    cpu: dict[tuple[str, str], list[float]] = {s: [] for s in settings}
    for i in range(warmup + steps):
        for mask_name, attn in settings:
            set_fused(model, ATTENTION[attn])
            start, start_cpu = time.perf_counter(), time.process_time()
            enc, dec = sample_masks(MASKINGS[mask_name], cfg.grid, batch, rng)
            loss, _ = model(clip, torch.from_numpy(enc), torch.from_numpy(dec))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
            if not torch.isfinite(loss):
                raise RuntimeError(f"{name}: non-finite loss in {mask_name}/{attn}")
            if i >= warmup:
                times[(mask_name, attn)].append(elapsed)
                cpu[(mask_name, attn)].append(elapsed_cpu)
    params = sum(p.numel() for p in model.parameters())
    rows = []
    for mask_name, attn in settings:
        flops = masked_pretrain_flops(cfg, MASKINGS[mask_name])
        rows.append(
            dict(
                preset=name,
                params_m=round(params / 1e6, 2),
                clip=f"{cfg.num_frames}x{cfg.img_size}",
                batch=batch,
                masking=mask_name,
                attention=attn,
                step_s=statistics.median(times[(mask_name, attn)]),
                step_s_min=min(times[(mask_name, attn)]),
                step_s_all=[round(t, 4) for t in times[(mask_name, attn)]],
                cpu_s=statistics.median(cpu[(mask_name, attn)]),
                cpu_s_all=[round(t, 4) for t in cpu[(mask_name, attn)]],
                fwd_gflops_per_clip=flops.total / 1e9,
            )
        )
    key = "cpu_s" if by_cpu else "step_s"
    base = {(r["masking"], r["attention"]): r[key] for r in rows}
    v1, v2 = MASKINGS
    for r in rows:  # speed-ups > 1 mean faster; each against the other setting of the same run
        r["dual_vs_v1"] = base[(v1, r["attention"])] / base[(v2, r["attention"])]
        r["sdpa_vs_explicit"] = base[(r["masking"], "explicit")] / base[(r["masking"], "sdpa")]
        r["vs_reference_v1_explicit"] = base[(v1, "explicit")] / r[key]
        r["ratios_from"] = key
    return rows


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'preset':<6} {'params':>7} {'clip':>7} {'B':>2} {'decoder masking':<20} {'attn':<8} "
        f"{'wall s':>7} {'cpu s':>7} {'fwd GFLOPs/clip':>15} {'x vs V1':>8} {'x vs expl.':>10} {'x vs ref':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['preset']:<6} {r['params_m']:>6.1f}M {r['clip']:>7} {r['batch']:>2} {r['masking']:<20} "
            f"{r['attention']:<8} {r['step_s']:>7.3f} {r['cpu_s']:>7.3f} {r['fwd_gflops_per_clip']:>15.3f} "
            f"{r['dual_vs_v1']:>8.2f} {r['sdpa_vs_explicit']:>10.2f} {r['vs_reference_v1_explicit']:>8.2f}"
        )
    print(
        f"wall s / cpu s: median step time, wall clock / this process's CPU time. Ratios of median "
        f"{'CPU' if rows and rows[0]['ratios_from'] == 'cpu_s' else 'wall'} times, > 1 = faster: x vs V1 = V1 / V2 "
        "(same attention); x vs expl. = explicit / SDPA (same masking); x vs ref = V1 + explicit attention (the "
        "reference's setting) / this setting."
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,base", help="comma-separated preset names (default: tiny,base)")
    ap.add_argument("--batch", type=int, default=1, help="clips per step (default 1: ViT-B on a 2-core CPU)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per setting (median reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per setting first")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (default: torch's choice); 1 is steadier on a busy shared machine",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the rows and the machine description here")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    machine = dict(
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
    )
    print(
        f"# {machine['platform']}, {machine['cpu_count']} CPUs, torch {machine['torch']} "
        f"({machine['torch_threads']} threads); batch {args.batch}, {args.steps} timed steps after {args.warmup}"
    )
    rows = []
    for name in [p.strip() for p in args.presets.split(",") if p.strip()]:
        rows += bench_preset(name, args.batch, args.steps, args.warmup, args.seed, by_cpu=torch.get_num_threads() == 1)
    print_table(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(dict(machine=machine, args={k: str(v) for k, v in vars(args).items()}, rows=rows), indent=2)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
