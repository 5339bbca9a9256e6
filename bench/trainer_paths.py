"""Trainer fast paths benchmark: the training step of real Ray Train pre-training runs, per setting.

    python bench/trainer_paths.py --shards data/sample/shards [--preset nano] [--steps 40] [--json out.json]

Each row is a short run of trainer/pretrain.py (`main(cfg=...)`, configs/pretrain/tiny.yaml pointed at the shards)
with one setting changed: fp32 eager on 1 worker (the baseline), bf16 autocast, torch.compile, both, gradient
checkpointing, 2 DDP workers, 2 FSDP workers. Every run uses the same seed, data, per-worker batch and CPU shares, in
this process's turn, one after the other in one local Ray instance. Columns, from the run's metrics.jsonl (every
report window after the first, whose first step pays start-up and compilation):
- compute s: median seconds of `train_step` per step (forward, backward, clip, optimizer step; no data wait);
- step s: median wall seconds per step, data wait included;
- clips/s: clips per second over all workers (median window);
- first step s / compile s: the first step's time and Dynamo's compile time (`compile_s` in the metrics);
- x compute, x clips/s: the ratios to the baseline row of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ONE = ("scaling.num_workers=1",)
TWO = ("scaling.num_workers=2",)
SETTINGS: dict[str, tuple[str, ...]] = {
    "1 worker, fp32, eager": ONE,
    "1 worker, bf16 autocast": (*ONE, "scaling.precision=bf16"),
    "1 worker, fp32, compiled": (*ONE, "model.compile=true"),
    "1 worker, bf16, compiled": (*ONE, "scaling.precision=bf16", "model.compile=true"),
    "1 worker, fp32, grad checkpointing": (*ONE, "model.grad_checkpointing=true"),
    "2 workers DDP, fp32": TWO,
    "2 workers FSDP, fp32": (*TWO, "scaling.strategy=fsdp"),
}


def run_setting(name: str, sets: tuple[str, ...], args, storage: Path) -> dict:
    from trainer import pretrain
    from trainer.config import load_config
    from trainer.metrics import read_metrics

    overrides = [f"data.path={args.shards}", f"model.preset={args.preset}", f"run.storage_path={storage}",
                 f"run.name=bench-{len(list(storage.iterdir()))}", "run.tensorboard=false", "data.max_tasks=1",
                 "data.cpus_per_task=0.25", "scaling.cpus_per_worker=0.5", f"data.batch_size={args.batch}",
                 f"optim.max_steps={args.steps}", "optim.warmup_steps=0", f"run.log_every={args.window}",
                 f"run.checkpoint_every={args.steps}", *sets]
    cfg = load_config("pretrain", ROOT / "configs/pretrain/tiny.yaml", overrides)
    t0 = time.perf_counter()
    pretrain.main(cfg=cfg)
    wall = time.perf_counter() - t0
    rows = read_metrics(cfg.run.run_dir)
    steady = rows[1:] or rows
    return {"setting": name, "overrides": list(sets), "workers": cfg.scaling.num_workers,
            "compute_s": statistics.median(r["compute_time"] for r in steady),
            "step_s": statistics.median(r["step_time"] for r in steady),
            "clips_per_s": statistics.median(r["clips_per_s"] for r in steady),
            "first_step_s": rows[0]["first_step_s"], "compile_s": rows[0].get("compile_s"),
            "loss_first": rows[0]["loss"], "loss_last": rows[-1]["loss"], "run_wall_s": wall}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", required=True)
    ap.add_argument("--preset", default="nano")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--window", type=int, default=5, help="steps per report window")
    ap.add_argument("--batch", type=int, default=4, help="clips per worker per step (x num_sample 2 repeats)")
    ap.add_argument("--only", nargs="*", help="settings to run (substrings of their names)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, object_store_memory=512 * 1024 * 1024, include_dashboard=False, log_to_driver=False)
    storage = Path(tempfile.mkdtemp(prefix="bench-trainer-paths-"))
    results = []
    try:
        for name, sets in SETTINGS.items():
            if args.only and not any(s in name for s in args.only):
                continue
            results.append(run_setting(name, sets, args, storage))
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    base = results[0]
    for r in results:
        r["x_compute"] = base["compute_s"] / r["compute_s"]
        r["x_clips_per_s"] = r["clips_per_s"] / base["clips_per_s"]
    width = max(len(r["setting"]) for r in results)
    print(f"{args.preset}, per-worker batch {args.batch} x 2 repeats, {args.steps} steps, median of "
          f"{args.window}-step windows after the first; ratios to '{base['setting']}'")
    print(f"{'setting':<{width}}  compute s  step s  clips/s  first step s  compile s  x compute  x clips/s  loss")
    for r in results:
        compile_s = f"{r['compile_s']:9.1f}" if r["compile_s"] else f"{'-':>9}"
        print(f"{r['setting']:<{width}}  {r['compute_s']:9.4f}  {r['step_s']:6.3f}  {r['clips_per_s']:7.1f}  "
              f"{r['first_step_s']:12.2f}  {compile_s}  {r['x_compute']:9.2f}  {r['x_clips_per_s']:9.2f}  "
              f"{r['loss_first']:.4f} -> {r['loss_last']:.4f}")
    out = {"preset": args.preset, "steps": args.steps, "window": args.window, "batch": args.batch,
           "cpus": os.cpu_count(), "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
