"""GPU check: ViT-B dual-masked vs V1 training steps in bf16, eager and compiled, with memory, FLOP/s, MFU, the
largest batch that fits, and a short Ray Train pre-training run. One table, one JSON.

    python bench/gpu_check.py --json gpu_check.json     # one GPU, at most ~8 minutes (--budget-s)
    python bench/gpu_check.py --smoke                   # CPU, nano preset, seconds: CI runs this (tests/bench)

Rows, at the reference's per-GPU batch (OpenGVLab/VideoMAEv2 scripts/pretrain/vit_b_hybrid_pt.sh: `--batch_size 32
--num_sample 4`, i.e. 128 clips per GPU per step after repeated augmentation; `--batch` changes it):
- step: zero_grad -> forward under bf16 autocast -> backward -> fused AdamW, for V1 (decoder = every hidden token)
  and dual masking (tube 0.9 + running cell 0.5), eager and `torch.compile(fullgraph=True)`; median of timed steps
  after warm-up; peak memory = torch.cuda.max_memory_allocated over the timed steps; TFLOP/s from the analytic
  FLOPs (videomae.flops: 3 x forward multiply-adds x 2 x batch); MFU against the GPU's dense bf16 peak
  (`--peak-tflops`, default from the device name, e.g. H200/H100 SXM 989) and against a matmul measured here.
- largest batch: per masking, eager bf16, doubling from `--batch` until out of memory (or `--max-batch`), then
  bisection; each probe is one full step; capped at `--search-s` seconds per masking.
- ray pretrain: `ray_pretrain_run` (a hook, kept thin while trainer/ is refactored): trainer/pretrain.py's
  `main(cfg=...)` on a config (default configs/pretrain/tiny.yaml on the sample shards), for `--ray-steps` steps on
  this GPU. Skipped with the reason when ray or the shards are missing; a failure is recorded, not raised.

Imports at module level: torch, numpy and the project's videomae package only (ray and trainer/ inside the hook).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
# Run on a GPU machine from a bare checkout, with no install (the module docstring): the tree's root makes `videomae`
# importable there, as `ray job submit` entry points do for their shipped tree.
sys.path.insert(0, str(ROOT))

from videomae import MaskingConfig, VideoMAEConfig, VideoMAEPretrain, sample_masks  # noqa: E402
from videomae.flops import masked_pretrain_flops  # noqa: E402

MASKINGS = {"V1": MaskingConfig(decoder="none"), "dual": MaskingConfig(decoder="running_cell", decoder_ratio=0.5)}
# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, from the vendors' data sheets; matched against the device name.
PEAK_TFLOPS = {"H200": 989.4, "H100 SXM": 989.4, "H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0,
               "A100": 312.0, "L40S": 362.1, "L4": 121.0}


class Budget:
    """The run's wall-clock allowance; every section asks it before starting."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def spec_peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def matmul_tflops(device: torch.device, n: int, reps: int = 10) -> float:
    """bf16 n^3 matmul rate measured here: the practical ceiling a step's TFLOP/s is compared with."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


class StepBench:
    """One model + fused AdamW; runs training steps at any batch and masking (timing only: weights drift freely)."""

    def __init__(self, cfg: VideoMAEConfig, device: torch.device, compile_backend: str | None):
        torch.manual_seed(0)
        self.cfg, self.device = cfg, device
        self.model = VideoMAEPretrain(cfg).to(device).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05,
                                     fused=True)
        self.compiled = (torch.compile(self.model, fullgraph=True, backend=compile_backend)
                         if compile_backend else None)

    def inputs(self, masking: MaskingConfig, batch: int, count: int = 3):
        """A few (clip, enc_mask, dec_mask) on the device, made before timing (the data pipeline's work)."""
        c, rng = self.cfg, np.random.default_rng(0)
        out = []
        for _ in range(count):
            clip = torch.randn(batch, 3, c.num_frames, c.img_size, c.img_size, device=self.device)
            enc, dec = sample_masks(masking, c.grid, batch, rng)
            out.append((clip, torch.from_numpy(enc).to(self.device), torch.from_numpy(dec).to(self.device)))
        return out

    def step(self, forward, clip, enc, dec) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            loss, _ = forward(clip, enc, dec)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def time_steps(self, compiled: bool, masking: MaskingConfig, batch: int, warmup: int, steps: int) -> dict:
        forward = self.compiled if compiled else self.model
        data = self.inputs(masking, batch)
        t = time.perf_counter()
        self.step(forward, *data[0])  # compiled: trace + compile + one step
        sync(self.device)
        first = time.perf_counter() - t
        for i in range(warmup - 1):
            self.step(forward, *data[(i + 1) % len(data)])
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        times, losses = [], []
        for i in range(steps):
            sync(self.device)
            t = time.perf_counter()
            losses.append(self.step(forward, *data[i % len(data)]))
            sync(self.device)
            times.append(time.perf_counter() - t)
        if not all(math.isfinite(float(v)) for v in losses):
            raise RuntimeError(f"non-finite loss: {[float(v) for v in losses]}")
        peak = torch.cuda.max_memory_allocated(self.device) if self.device.type == "cuda" else None
        median = statistics.median(times)
        return {"step_s": median, "step_s_all": [round(x, 5) for x in times], "first_step_s": first,
                "compile_s": first - median if compiled else None, "peak_bytes": peak,
                "final_loss": float(losses[-1])}

    def fits(self, masking: MaskingConfig, batch: int) -> bool:
        """One eager step at `batch`; False on out-of-memory (and the memory is given back)."""
        try:
            self.step(self.model, *self.inputs(masking, batch, count=1)[0])
            sync(self.device)
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            self.opt.zero_grad(set_to_none=True)
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()


def largest_batch(bench: StepBench, masking: MaskingConfig, start: int, max_batch: int, seconds: float) -> dict:
    """Doubling from `start` until a step runs out of memory or reaches `max_batch`, then bisection; stops early
    (and says so) after `seconds`."""
    deadline = time.monotonic() + seconds
    ok, bad, probes = 0, None, []
    b = start
    while b <= max_batch and time.monotonic() < deadline:
        fit = bench.fits(masking, b)
        probes.append((b, fit))
        if not fit:
            bad = b
            break
        ok, b = b, b * 2
    while bad is not None and bad - ok > 1 and time.monotonic() < deadline:
        mid = (ok + bad) // 2
        fit = bench.fits(masking, mid)
        probes.append((mid, fit))
        ok, bad = (mid, bad) if fit else (ok, mid)
    exact = bad is not None and bad - ok == 1
    why = "exact" if exact else ("reached --max-batch" if bad is None and b > max_batch else "time cap")
    return {"largest_ok": ok, "first_oom": bad, "exact": exact, "stopped": why, "probes": probes}


# ------------------------------------------------------------------------------------------------------- Ray hook
def ray_pretrain_run(config: str, steps: int, shards: str, extra: list[str], seconds: float) -> dict:
    """HOOK: a short Ray Train pre-training run on this GPU, through trainer/pretrain.py's `main(cfg=...)`.

    trainer/ is being refactored into one training loop; this stays a thin, guarded call: load the recipe config
    with overrides (GPU, bf16, `steps` steps, a scratch storage path, the given shards), run it, report wall time
    and the final metrics. Every way it cannot run is a row with the reason, never an exception."""
    if steps <= 0:
        return {"status": "skipped", "reason": "disabled (--ray-steps 0)"}
    try:
        import ray  # noqa: F401
    except ImportError as e:
        return {"status": "skipped", "reason": f"ray cannot be imported ({e})"}
    if not (Path(shards) / "manifest.json").exists():
        return {"status": "skipped", "reason": f"no shard dataset at {shards} (make one: python -m ingest.sample_data "
                                               "data/sample --small && python -m ingest --config "
                                               "configs/ingest/sample.yaml)"}
    if seconds < 60:
        return {"status": "skipped", "reason": f"only {seconds:.0f} s of the budget left"}
    try:
        from trainer.config import load_config
        from trainer.pretrain import main as pretrain_main
    except Exception as e:  # the trainer's layout may change under this hook
        return {"status": "skipped", "reason": f"trainer/pretrain.py not importable: {e!r}"}
    storage = tempfile.mkdtemp(prefix="gpu-check-ray-")
    overrides = [f"data.path={shards}", f"optim.max_steps={steps}", f"run.storage_path={storage}",
                 "run.name=gpu-check", "scaling.use_gpu=true", "scaling.precision=bf16", "scaling.num_workers=1",
                 *extra]
    t = time.perf_counter()
    try:
        cfg = load_config("pretrain", config, overrides)
        result = pretrain_main(cfg=cfg)
    except BaseException as e:  # SystemExit from the trainer's config checks included
        return {"status": "failed", "error": repr(e)[:800], "wall_s": time.perf_counter() - t,
                "config": config, "overrides": overrides}
    metrics = {k: v for k, v in (getattr(result, "metrics", None) or {}).items()
               if k in ("loss", "step", "clips_per_s", "tokens_per_s", "samples_seen")}
    return {"status": "ok", "wall_s": time.perf_counter() - t, "metrics": metrics, "config": config,
            "overrides": overrides, "storage": storage}


# ----------------------------------------------------------------------------------------------------------- main
def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="CPU smoke mode: nano, batch 2, 2 steps, aot_eager compile")
    ap.add_argument("--preset", default=None, help="default base (smoke: nano)")
    ap.add_argument("--batch", type=int, default=None, help="clips per step (default 128 = 32 x 4 repeats; smoke: 2)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per row (default 10; smoke: 2)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (the first compiles)")
    ap.add_argument("--compile-backend", default=None,
                    help="torch.compile backend (default inductor; smoke: aot_eager)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of the GPU (default: by name)")
    ap.add_argument("--matmul-n", type=int, default=None, help="size of the ceiling matmul (default 8192; smoke 256)")
    ap.add_argument("--max-batch", type=int, default=None, help="largest-batch search cap (default 4096; smoke 8)")
    ap.add_argument("--search-s", type=float, default=60.0, help="seconds per largest-batch search")
    ap.add_argument("--budget-s", type=float, default=450.0, help="wall-clock allowance of the whole check")
    ap.add_argument("--ray-config", default=str(ROOT / "configs/pretrain/tiny.yaml"))
    ap.add_argument("--ray-shards", default=str(ROOT / "data/sample/shards"))
    ap.add_argument("--ray-steps", type=int, default=None, help="Ray Train steps (default 200; smoke: 0 = skip)")
    ap.add_argument("--ray-set", action="append", default=[], metavar="KEY=VALUE", help="more config overrides")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    smoke = {"preset": "nano", "batch": 2, "steps": 2, "compile_backend": "aot_eager", "matmul_n": 256,
             "max_batch": 8, "ray_steps": 0}
    full = {"preset": "base", "batch": 128, "steps": 10, "compile_backend": "inductor", "matmul_n": 8192,
            "max_batch": 4096, "ray_steps": 200}
    for k, v in (smoke if args.smoke else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.smoke:
        args.warmup = min(args.warmup, 2)
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    budget = Budget(args.budget_s)
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; --smoke runs the CPU smoke mode (nano, seconds)")
    device = torch.device("cpu" if args.smoke else "cuda")
    if args.smoke:
        torch.set_num_threads(1)  # nano needs no more; on a shared 2-core CI machine spinning threads only wait
    cfg = VideoMAEConfig.from_preset(args.preset)
    env = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
           "smoke": args.smoke, "preset": args.preset, "batch": args.batch}
    print(f"# gpu_check on {env['device']} ({device.type}), torch {env['torch']}, {args.preset}, batch {args.batch}",
          flush=True)
    ceiling = matmul_tflops(device, args.matmul_n)
    spec = spec_peak_tflops(device, args.peak_tflops)
    bench = StepBench(cfg, device, args.compile_backend)
    rows = []
    for compiled in (False, True):
        for name, masking in MASKINGS.items():
            label = f"{name} {'compiled' if compiled else 'eager'}"
            if budget.left() < 30:
                rows.append({"row": label, "skipped": "budget spent"})
                continue
            try:
                r = bench.time_steps(compiled, masking, args.batch, args.warmup, args.steps)
            except Exception as e:  # one failing row (a compiler error, out of memory) must not lose the others
                rows.append({"row": label, "skipped": f"failed: {e!r}"[:600]})
                print(f"  {label}: failed: {e!r}"[:600], flush=True)
                bench.opt.zero_grad(set_to_none=True)
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            fwd = masked_pretrain_flops(cfg, masking, count_norms=False, embed_visible_only=True).total
            flop = 6 * fwd * args.batch  # multiply-adds x 2, forward + backward (2x)
            tflops = flop / r["step_s"] / 1e12
            rows.append({"row": label, "masking": name, "compiled": compiled, "batch": args.batch, **r,
                         "step_tflop": flop / 1e12, "tflops": tflops, "clips_per_s": args.batch / r["step_s"],
                         "mfu_spec": tflops / spec if spec else None, "of_matmul_ceiling": tflops / ceiling})
            print(f"  {label}: {r['step_s'] * 1e3:.1f} ms/step", flush=True)
    searches = {}
    for name, masking in MASKINGS.items():
        seconds = min(args.search_s, budget.left() - 90)
        try:
            searches[name] = (largest_batch(bench, masking, args.batch, args.max_batch, seconds) if seconds > 5
                              else {"stopped": "budget spent"})
        except Exception as e:
            searches[name] = {"stopped": f"failed: {e!r}"[:600]}
    del bench
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    ray_row = ray_pretrain_run(args.ray_config, args.ray_steps, args.ray_shards, args.ray_set, budget.left())
    report = {"env": env, "matmul_ceiling_tflops": ceiling, "spec_peak_tflops": spec, "rows": rows,
              "largest_batch": searches, "ray_pretrain": ray_row, "args": {k: str(v) for k, v in vars(args).items()}}
    print_table(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


def print_table(report: dict) -> None:
    spec, ceiling = report["spec_peak_tflops"], report["matmul_ceiling_tflops"]
    print(f"\nbf16 matmul ceiling measured: {ceiling:.3g} TFLOP/s; spec dense bf16 peak: "
          f"{f'{spec:.0f} TFLOP/s' if spec else 'unknown (--peak-tflops)'}")
    head = (f"{'row':<16} {'batch':>5} {'ms/step':>8} {'clips/s':>8} {'TFLOP/s':>8} {'MFU':>6} {'of mm':>6} "
            f"{'peak GiB':>8} {'compile s':>9} {'x vs V1':>7}")
    print(head + "\n" + "-" * len(head))
    by = {r["row"]: r for r in report["rows"]}
    for r in report["rows"]:
        if "skipped" in r:
            print(f"{r['row']:<16} skipped: {r['skipped']}")
            continue
        v1 = by.get(r["row"].replace("dual", "V1"), {})
        vs_v1 = v1["step_s"] / r["step_s"] if "step_s" in v1 else float("nan")
        mfu = f"{r['mfu_spec']:.1%}" if r["mfu_spec"] is not None else "-"
        peak = f"{r['peak_bytes'] / 2**30:.2f}" if r["peak_bytes"] is not None else "-"
        comp = f"{max(r['compile_s'], 0.0):.1f}" if r["compile_s"] is not None else ""
        print(f"{r['row']:<16} {r['batch']:>5} {r['step_s'] * 1e3:>8.1f} {r['clips_per_s']:>8.1f} {r['tflops']:>8.3g} "
              f"{mfu:>6} {r['of_matmul_ceiling']:>6.1%} {peak:>8} {comp:>9} {vs_v1:>7.2f}")
    for name, s in report["largest_batch"].items():
        if "largest_ok" in s:
            print(f"largest batch {name:<4}: {s['largest_ok']} (first OOM: {s['first_oom']}; {s['stopped']}; "
                  f"{len(s['probes'])} probes)")
        else:
            print(f"largest batch {name:<4}: {s['stopped']}")
    ray = report["ray_pretrain"]
    detail = ray.get("reason") or ray.get("error") or f"{ray.get('wall_s', 0):.0f} s, {ray.get('metrics')}"
    print(f"ray pretrain: {ray['status']}: {detail}")


if __name__ == "__main__":
    main()
