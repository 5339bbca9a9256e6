"""Training-step benchmark: our dual-masked ViT-B step against the reference's, at equal precision, on this CPU.

    python bench/model_step.py --json docs/bench/model_step.json

Sections (`--sections`, default ceiling,step,profile,memory; `masking` adds the V1 / SDPA table):
- ceiling: the machine's matmul rate (a 2048^3 matmul, bf16 and fp32, same threads), before and after the steps;
  the higher of the two is the ceiling a step's achieved FLOP/s is compared with.
- step: settings x precision (fp32, bf16 autocast). Settings: `reference` (bench/reference_step.py: the reference's
  step rebuilt from its code: boolean selection, explicit attention, torch's default AdamW, eager), `eager` (our
  model as a user gets it: SDPA, fused AdamW) and `compiled` (ours, `torch.compile(fullgraph=True)`, explicit
  attention, fused AdamW: the fastest on this CPU). Each setting trains its own copy from the same initial weights
  on the same clips and masks, the settings interleaved step by step (drift from other work on the machine hits
  all alike); the loss of every step is compared with the reference's at the same precision.
- profile: torch.profiler's top operators of one bf16 step, reference vs ours compiled.
- memory: peak tensor memory of a step (fake tensors, bench/step_memory.py) for V1 vs dual at the recipe's per-GPU
  batch, and the largest batch within a budget with and without gradient checkpointing.
- masking: the earlier table (V1 vs dual, SDPA vs explicit, eager fp32) for `--presets`.

Time per step: with one torch thread (`--threads 1`, the default) the ratios use the process's CPU time, which a
busy shared machine inflates far less than wall time; otherwise wall time. A step's FLOPs are 3x the forward's
multiply-adds x 2 (videomae.flops, norms excluded) x batch.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import reference_step
import step_memory
import torch
import torch.nn.functional as F

from videomae import MaskingConfig, VideoMAEConfig, VideoMAEPretrain, create_model, sample_masks
from videomae.flops import masked_pretrain_flops
from videomae.layers import set_attention

DUAL = MaskingConfig(decoder="running_cell", decoder_ratio=0.5)
V1 = MaskingConfig(decoder="none")
SETTINGS = ("reference", "eager", "compiled")
VARIANTS = ("eager-explicit", "compiled-sdpa")  # the other attention kernel, for the attention lever


class Clock:
    """Seconds of this process's CPU time (one thread) or wall time."""

    def __init__(self, cpu: bool):
        self.now = time.process_time if cpu else time.perf_counter
        self.kind = "cpu" if cpu else "wall"


# ---------------------------------------------------------------------------------------------------------- ceiling
def matmul_rate(dtype: torch.dtype, clock: Clock, n: int = 2048, reps: int = 5) -> float:
    """FLOP/s of an n^3 matmul, the median of `reps` timings."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(reps):
        t = clock.now()
        a @ b
        times.append(clock.now() - t)
    return 2 * n**3 / statistics.median(times)


def ceiling(clock: Clock) -> dict:
    return {"bf16_flops": matmul_rate(torch.bfloat16, clock), "fp32_flops": matmul_rate(torch.float32, clock)}


# ------------------------------------------------------------------------------------------------------------- step
def synthetic_batches(cfg: VideoMAEConfig, batch: int, count: int, seed: int) -> list[torch.Tensor]:
    """Smooth random clips (trilinear upsampling of coarse noise, per channel standardised): the per-tubelet targets
    are partly predictable from the visible tubes, so the loss falls within a few steps, unlike on white noise."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        coarse = torch.randn(batch, 3, max(cfg.num_frames // 4, 1), 7, 7, generator=gen)
        clip = F.interpolate(coarse, size=(cfg.num_frames, cfg.img_size, cfg.img_size), mode="trilinear")
        out.append((clip - clip.mean(dim=(2, 3, 4), keepdim=True)) / clip.std(dim=(2, 3, 4), keepdim=True))
    return out  # each (B, 3, T, H, W)


@dataclass
class Runner:
    """One setting: its own model copy and optimizer, and a step function returning the loss."""

    name: str
    bf16: bool
    model: torch.nn.Module
    step_fn: object
    compile_s: float = float("nan")

    def step(self, clip, enc, dec) -> float:
        return self.step_fn(clip, enc, dec)


def make_runner(setting: str, cfg: VideoMAEConfig, state: dict, bf16: bool, lr: float, compile_mode: str | None
                ) -> Runner:
    betas = (0.9, 0.95)
    if setting == "reference":
        model = reference_step.ReferencePretrain(cfg).train()
        model.load_state_dict(state)
        opt = torch.optim.AdamW(reference_step.param_groups(model, 0.05), lr=lr, betas=betas)
        return Runner(setting, bf16, model, lambda c, e, d: reference_step.train_step(model, opt, c, e, d, bf16))
    model = VideoMAEPretrain(cfg).train()
    model.load_state_dict(state)
    opt = torch.optim.AdamW(reference_step.param_groups(model, 0.05), lr=lr, betas=betas, fused=True)
    mode, _, attention = setting.partition("-")
    # Default attention: SDPA eager (the model's default), explicit softmax compiled (faster than CPU flash attention
    # for these sequence lengths, measured: docs/model.md).
    set_attention(model, (attention or ("sdpa" if mode == "eager" else "explicit")) == "sdpa")
    forward = torch.compile(model, fullgraph=True, mode=compile_mode) if mode == "compiled" else model

    def step(clip, enc, dec) -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = forward(clip, enc, dec)
        value = loss.item()  # both sides read the loss every step (the stop-on-non-finite check)
        if not math.isfinite(value):
            raise RuntimeError(f"{setting}: loss is {value}")
        loss.backward()
        # The logged gradient norm (both sides compute one). Only the norm: clip_grad_norm_(inf), the trainer's way,
        # also multiplies every gradient by 1.0, a wasted pass over all of them (measured in the profile).
        torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
        opt.step()
        return value

    return Runner(setting, bf16, model, step)


def run_steps(cfg: VideoMAEConfig, settings: list[str], bf16: bool, steps: int, warmup: int, batch: int, seed: int,
              lr: float, clock: Clock, compile_mode: str | None, keep: bool = False) -> tuple[dict, dict]:
    """Interleaved training steps of every setting at one precision. Returns per-setting results (and the runners,
    when `keep`, for profiling)."""
    torch.manual_seed(seed)
    state = copy.deepcopy(VideoMAEPretrain(cfg).state_dict())
    runners = [make_runner(s, cfg, state, bf16, lr, compile_mode) for s in settings]
    clips = synthetic_batches(cfg, batch, 4, seed)
    rng = np.random.default_rng(seed)
    plan = [(clips[i % len(clips)], *(torch.from_numpy(m) for m in sample_masks(DUAL, cfg.grid, batch, rng)))
            for i in range(steps)]
    times = {r.name: [] for r in runners}
    walls = {r.name: [] for r in runners}  # compile time is wall time: inductor compiles in worker processes
    losses = {r.name: [] for r in runners}
    for i, (clip, enc, dec) in enumerate(plan):
        for r in runners:
            t, wall = clock.now(), time.perf_counter()
            losses[r.name].append(r.step(clip, enc, dec))
            times[r.name].append(clock.now() - t)
            walls[r.name].append(time.perf_counter() - wall)
        print(f"  step {i + 1}/{steps} ({'bf16' if bf16 else 'fp32'}): "
              + ", ".join(f"{r.name} {times[r.name][-1]:.2f}s loss {losses[r.name][-1]:.4f}" for r in runners),
              flush=True)
    out = {}
    for r in runners:
        timed = times[r.name][warmup:]
        med = statistics.median(timed)
        out[r.name] = {"step_s": med, "step_s_all": [round(t, 4) for t in times[r.name]],
                       "first_step_s": times[r.name][0], "losses": losses[r.name]}
        if r.name.startswith("compiled"):  # first call: trace + compile + one step
            out[r.name]["compile_s"] = walls[r.name][0] - statistics.median(walls[r.name][warmup:])
    return out, ({r.name: r for r in runners} if keep else {})


def loss_deviation(losses: list[float], ref: list[float]) -> dict:
    rel = [abs(a - b) / abs(b) for a, b in zip(losses, ref, strict=True)]
    return {"max_rel": max(rel), "mean_rel": sum(rel) / len(rel), "final_rel": rel[-1]}


# ---------------------------------------------------------------------------------------------------------- profile
def profile_step(runner: Runner, clip, enc, dec, top: int, steps: int = 3) -> list[dict]:
    """Self time per operator, averaged over `steps` profiled steps (one profiled step alone is at the mercy of
    whatever else the machine runs at that moment)."""
    from torch.profiler import ProfilerActivity, profile

    runner.step(clip, enc, dec)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            runner.step(clip, enc, dec)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3 / steps, "share": e.self_cpu_time_total / total,
             "calls": e.count // steps} for e in events[:top]] + [
        {"op": "(total)", "self_ms": total / 1e3 / steps, "share": 1.0, "calls": 0}]


def print_profile(name: str, rows: list[dict], step_s: float, kind: str) -> None:
    """Shares of the profiler's self time, and those shares of the step's median time from the timed steps: the
    profiler reports wall clock, which other work on a shared machine inflates; the shares it keeps."""
    print(f"\n{name}: top operators of a bf16 step by self time (3 profiled steps); ms = share x the step's median "
          f"{kind} time ({step_s:.3f} s)")
    print(f"{'operator':<58} {'share':>6} {'ms':>7} {'calls':>6}")
    for r in rows:
        print(f"{r['op'][:58]:<58} {r['share']:>6.1%} {r['share'] * step_s * 1e3:>7.0f} {r['calls']:>6}")


# ----------------------------------------------------------------------------------------------------------- memory
def memory_section(preset: str, batch: int, budget_gib: float) -> dict:
    cfg = VideoMAEConfig.from_preset(preset)
    out = {"check_fake_vs_real_tiny_b2": step_memory.check_against_real("tiny", 2), "batch": batch,
           "budget_gib": budget_gib, "peak": {}, "largest_batch": {}}
    for name, masking in (("V1", V1), ("dual", DUAL)):
        out["peak"][name] = {p: step_memory.step_peak_bytes(cfg, masking, batch, p == "bf16") for p in ("bf16", "fp32")}
        for ckpt in (False, True):
            n, probes = step_memory.largest_batch(cfg.model_copy(update={"grad_checkpointing": ckpt}), masking, True,
                                                  int(budget_gib * 2**30))
            out["largest_batch"][f"{name}, checkpointing {'on' if ckpt else 'off'}"] = {"batch": n, "probes": probes}
    return out


def print_memory(mem: dict, preset: str) -> None:
    gib = 2**30
    chk = mem["check_fake_vs_real_tiny_b2"]
    print(f"\nmemory ({preset}): peak tensor bytes of one step (params + grads + AdamW state + activations), fake "
          f"tensors; check on tiny, batch 2: fake/real = "
          + ", ".join(f"{p} {v['fake_bytes'] / v['real_bytes']:.5f}" for p, v in chk.items()))
    v1, dual = mem["peak"]["V1"], mem["peak"]["dual"]
    for p in ("bf16", "fp32"):
        print(f"  batch {mem['batch']} {p}: V1 {v1[p] / gib:.2f} GiB, dual {dual[p] / gib:.2f} GiB "
              f"(dual / V1 = {dual[p] / v1[p]:.2f})")
    print(f"  largest bf16 batch within {mem['budget_gib']:g} GiB:")
    for name, r in mem["largest_batch"].items():
        print(f"    {name:<28} {r['batch']:>6}")


# ---------------------------------------------------------------------------------------------------------- masking
def masking_section(presets: list[str], batch: int, steps: int, seed: int, clock: Clock) -> list[dict]:
    """V1 vs dual x SDPA vs explicit, eager fp32, one model (timing only)."""
    rows = []
    for name in presets:
        torch.manual_seed(seed)
        model = create_model(name).train()
        cfg = model.cfg
        opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, weight_decay=0.05)
        clip = torch.randn(batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size)
        rng = np.random.default_rng(seed)
        grid = [(m, a) for m in ("V1", "dual") for a in ("sdpa", "explicit")]
        times = {g: [] for g in grid}
        for i in range(steps + 1):
            for m, a in grid:
                set_attention(model, a == "sdpa")
                enc, dec = sample_masks(V1 if m == "V1" else DUAL, cfg.grid, batch, rng)
                t = clock.now()
                loss, _ = model(clip, torch.from_numpy(enc), torch.from_numpy(dec))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if i:
                    times[(m, a)].append(clock.now() - t)
        med = {g: statistics.median(t) for g, t in times.items()}
        for m, a in grid:
            rows.append({"preset": name, "masking": m, "attention": a, "step_s": med[(m, a)],
                         "dual_vs_v1": med[("V1", a)] / med[("dual", a)],
                         "sdpa_vs_explicit": med[(m, "explicit")] / med[(m, "sdpa")]})
    print(f"\n{'preset':<6} {'masking':<6} {'attn':<9} {clock.kind + ' s':>7} {'x vs V1':>8} {'x vs expl.':>10}")
    for r in rows:
        print(f"{r['preset']:<6} {r['masking']:<6} {r['attention']:<9} {r['step_s']:>7.3f} {r['dual_vs_v1']:>8.2f} "
              f"{r['sdpa_vs_explicit']:>10.2f}")
    return rows


# ------------------------------------------------------------------------------------------------------------- main
def step_table(results: dict, step_flop: float, ceil: dict, clock: Clock) -> list[dict]:
    rows = []
    for prec, res in results.items():
        ref = res["reference"]
        for name, r in res.items():
            achieved = step_flop / r["step_s"]
            rows.append({"precision": prec, "setting": name, "step_s": r["step_s"],
                         "x_vs_reference": ref["step_s"] / r["step_s"], "gflops": achieved / 1e9,
                         "share_of_bf16_ceiling": achieved / ceil["bf16_flops"],
                         "share_of_own_ceiling": achieved / ceil[f"{prec}_flops"],
                         "compile_s": r.get("compile_s"), **{f"loss_{k}": v for k, v in
                                                             loss_deviation(r["losses"], ref["losses"]).items()}})
    print(f"\n{'precision':<9} {'setting':<10} {clock.kind + ' s':>7} {'x vs ref':>8} {'GFLOP/s':>8} "
          f"{'of bf16 peak':>12} {'of own peak':>11} {'loss max rel. diff':>18} {'compile s':>9}")
    for r in rows:
        compile_s = f"{r['compile_s']:>9.0f}" if r["compile_s"] is not None else f"{'':>9}"
        print(f"{r['precision']:<9} {r['setting']:<10} {r['step_s']:>7.3f} {r['x_vs_reference']:>8.2f} "
              f"{r['gflops']:>8.1f} {r['share_of_bf16_ceiling']:>12.1%} {r['share_of_own_ceiling']:>11.1%} "
              f"{r['loss_max_rel']:>18.2e} {compile_s}")
    return rows


def summarize(results: dict, step_flop: float, ceil: dict) -> dict:
    """The goal's numbers: our best bf16 step vs the reference's, the loss over the same steps, and the bound that
    the matmul ceiling puts on any implementation of these FLOPs."""
    out = {}
    for prec, res in results.items():
        ref = res["reference"]
        best = min((n for n in res if n != "reference"), key=lambda n: res[n]["step_s"])
        floor = step_flop / ceil[f"{prec}_flops"]  # every FLOP a matmul at the measured ceiling
        out[prec] = {"best": best, "x_vs_reference": ref["step_s"] / res[best]["step_s"],
                     "loss_max_rel_vs_reference": loss_deviation(res[best]["losses"], ref["losses"])["max_rel"],
                     "steps": len(ref["losses"]), "floor_s": floor, "x_bound_vs_reference": ref["step_s"] / floor}
        if "eager" in res and "compiled" in res:
            out[prec]["loss_max_rel_compiled_vs_eager"] = loss_deviation(res["compiled"]["losses"],
                                                                         res["eager"]["losses"])["max_rel"]
    if "bf16" in results and "fp32" in results:
        out["best_bf16_vs_reference_fp32"] = results["fp32"]["reference"]["step_s"] / results["bf16"][
            out["bf16"]["best"]]["step_s"]
    for prec in ("bf16", "fp32"):
        if prec in out:
            o = out[prec]
            print(f"{prec}: ours best ({o['best']}) {o['x_vs_reference']:.2f}x the reference's step; loss within "
                  f"{o['loss_max_rel_vs_reference']:.2e} (max relative) over {o['steps']} steps from the same weights; "
                  f"all FLOPs at the matmul ceiling would take {o['floor_s']:.2f} s = at most "
                  f"{o['x_bound_vs_reference']:.2f}x the reference")
            if "loss_max_rel_compiled_vs_eager" in o:
                print(f"  compiled vs eager loss, max relative difference: {o['loss_max_rel_compiled_vs_eager']:.2e}")
    if "best_bf16_vs_reference_fp32" in out:
        print(f"ours best bf16 vs the reference in fp32 (different precision): "
              f"{out['best_bf16_vs_reference_fp32']:.2f}x")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default="ceiling,step,profile,memory",
                    help="comma-separated: ceiling, step, profile, memory, masking")
    ap.add_argument("--preset", default="base", help="model of the step and memory sections (default base, ViT-B)")
    ap.add_argument("--batch", type=int, default=2, help="clips per step (default 2)")
    ap.add_argument("--steps", type=int, default=20, help="bf16 steps per setting (losses compared over all of them)")
    ap.add_argument("--fp32-steps", type=int, default=6, help="fp32 steps per setting (0 = skip fp32)")
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the median time")
    ap.add_argument("--settings", default=",".join(SETTINGS), help=f"subset of {','.join(SETTINGS + VARIANTS)}")
    ap.add_argument("--lr", type=float, default=1.5e-4)
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 1 = steadiest, ratios by CPU time")
    ap.add_argument("--top", type=int, default=12, help="operators per profile table")
    ap.add_argument("--mem-batch", type=int, default=128,
                    help="batch of the V1 vs dual memory row (default 128: the recipe's 32 clips x 4 repeats per GPU)")
    ap.add_argument("--mem-budget-gib", type=float, default=80.0,
                    help="memory budget of the largest-batch search (default 80: the reference's A100-80G)")
    ap.add_argument("--presets", default="tiny,base", help="models of the masking section")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write every result and the machine description here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = Clock(cpu=args.threads == 1)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    settings = [s for s in args.settings.split(",") if s]
    if "reference" not in settings or not set(settings) <= set(SETTINGS + VARIANTS):
        ap.error(f"--settings must include reference and name only {SETTINGS + VARIANTS}")

    machine = dict(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                   cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), torch=torch.__version__,
                   python=platform.python_version(), amx=torch.cpu._is_amx_tile_supported(),
                   avx512_bf16=torch.cpu._is_avx512_bf16_supported(), load_avg=os.getloadavg())
    print(f"# {machine['platform']}, {machine['cpu_count']} CPUs (AMX tiles: {machine['amx']}, AVX-512 BF16: "
          f"{machine['avx512_bf16']}), torch {machine['torch']}, {machine['torch_threads']} threads, times = "
          f"{clock.kind} time; load average {machine['load_avg'][0]:.1f}", flush=True)
    out: dict = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()}}
    cfg = VideoMAEConfig.from_preset(args.preset)
    step_flop = 3 * 2 * masked_pretrain_flops(cfg, DUAL, count_norms=False, embed_visible_only=True).total * args.batch

    if sections & {"ceiling", "step"}:
        out["ceiling_before"] = ceiling(clock)
    if "step" in sections:
        results, runners = {}, {}
        results["bf16"], runners = run_steps(cfg, settings, True, args.steps, args.warmup, args.batch, args.seed,
                                             args.lr, clock, args.compile_mode, keep="profile" in sections)
        if "profile" in sections:
            clip = synthetic_batches(cfg, args.batch, 1, args.seed + 1)[0]
            enc, dec = (torch.from_numpy(m) for m in sample_masks(DUAL, cfg.grid, args.batch, args.seed + 1))
            best = "compiled" if "compiled" in runners else settings[-1]
            out["profile"] = {name: profile_step(runners[name], clip, enc, dec, args.top)
                              for name in dict.fromkeys(["reference", best])}
        del runners
        gc.collect()
        if args.fp32_steps:
            results["fp32"], _ = run_steps(cfg, settings, False, args.fp32_steps, min(args.warmup, args.fp32_steps - 1),
                                           args.batch, args.seed, args.lr, clock, args.compile_mode)
        out["ceiling_after"] = ceiling(clock)
        ceil = {k: max(out["ceiling_before"][k], out["ceiling_after"][k]) for k in out["ceiling_before"]}
        print(f"\n{args.preset}, batch {args.batch}, dual masking, {step_flop / 1e9:.1f} GFLOP per step; matmul "
              f"ceiling bf16 {ceil['bf16_flops'] / 1e9:.0f} GFLOP/s, fp32 {ceil['fp32_flops'] / 1e9:.0f} GFLOP/s")
        out["step"] = {"rows": step_table(results, step_flop, ceil, clock), "results": results, "ceiling": ceil,
                       "step_gflop": step_flop / 1e9}
        out["summary"] = summarize(results, step_flop, ceil)
        for name, rows in out.get("profile", {}).items():
            print_profile(name, rows, results["bf16"][name]["step_s"], clock.kind)
    elif "ceiling" in sections:
        print(f"ceiling: {json.dumps(out['ceiling_before'])}")
    if "memory" in sections:
        out["memory"] = memory_section(args.preset, args.mem_batch, args.mem_budget_gib)
        print_memory(out["memory"], args.preset)
    if "masking" in sections:
        out["masking"] = masking_section([p for p in args.presets.split(",") if p], 1, 3, args.seed, clock)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
