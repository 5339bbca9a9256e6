"""Is the Ray Train pre-training step data-bound? The nano run's steady-state step against the model-only step.

    python bench/train_input.py --shards DIR [--steps 300] [--repeats 2] [--json out.json]

Side by side, in turn (A B A B ...), in one Ray instance on this machine:
- A, the pipeline: `trainer/pretrain.py` (configs/pretrain/tiny.yaml with `model.preset=nano`, the docs/results.md
  setting: batch 4 clips x 2 samples, one Ray Train worker with 1 CPU, the Ray Data tasks beside it) for `--steps`
  steps. Steady-state step = the median of the trainer's own logging windows (`step_time`, wall time per step)
  after the first two; `data_wait` = 1 - compute_time / step_time (`compute_time`: the train step alone, from the
  same windows) is the share of a step spent outside the model: waiting for the next batch, moving it to the device.
  The memory peak of every process of the run (the Ray Train worker, the Ray Data tasks, raylet, ...) is sampled
  and read from the kernel's high-water mark (bench/processes.py).
- B, the model alone: the same model, optimizer and step function (`trainer/step.py`) on one fixed batch of the
  same shape (8 samples with their masks), in a Ray task with 1 CPU, as the worker has: median step time.

The ratio A / B is the goal's measure (<= 1.2: not data-bound).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs/pretrain/tiny.yaml"


def recipe(shards: str, storage: str, name: str, steps: int, extra: list[str]):
    from trainer.config import load_config

    sets = [f"data.path={shards}", "model.preset=nano", f"run.storage_path={storage}", f"run.name={name}",
            "run.tensorboard=false", f"optim.max_steps={steps}", "run.log_every=10", f"run.checkpoint_every={steps}",
            *extra]
    return load_config("pretrain", TINY, sets)


def pipeline_run(cfg) -> dict:
    """One Ray Train run; steady-state step time and data wait from its metrics, memory peaks of every process."""
    from processes import Watch, tree_cpu  # bench/ is on the path when a script runs

    from trainer import pretrain
    from trainer.metrics import read_metrics

    cpu0, t0 = tree_cpu(), time.perf_counter()
    with Watch(interval=0.5) as watch:
        pretrain.main(cfg=cfg)
    wall, cpu = time.perf_counter() - t0, tree_cpu() - cpu0
    rows = read_metrics(cfg.run.run_dir)[2:]  # skip the first two windows (start-up, compile of nothing, warm-up)
    steps = [r["step_time"] for r in rows]
    waits = [1 - r["compute_time"] / r["step_time"] for r in rows if "compute_time" in r]
    return {"step_s": statistics.median(steps), "step_s_windows": [round(s, 4) for s in steps],
            "data_wait": statistics.median(waits) if waits else None, "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1), "memory_mb": watch.peaks()}


def model_only(batch_size: int, num_sample: int, steps: int) -> dict:
    """The step alone, in a 1-CPU Ray task (the worker's share): median seconds over `steps` after 3 warm-up."""
    import ray

    @ray.remote(num_cpus=1)
    def run() -> list[float]:
        import torch

        from trainer.optim import build_optimizer
        from trainer.step import Precision, train_step
        from videomae.masks import MaskingConfig, sample_masks
        from videomae.model import VideoMAEPretrain

        cfg = recipe("unused", "unused", "model-only", 1, [])
        torch.manual_seed(0)
        model = VideoMAEPretrain(cfg.model.architecture()).train()
        opt = build_optimizer(model, cfg.optim)
        arch, rows = model.cfg, batch_size * num_sample
        clip = torch.randn(rows, 3, arch.num_frames, arch.img_size, arch.img_size)
        enc, dec = (torch.from_numpy(m) for m in sample_masks(MaskingConfig(**cfg.mask.model_dump()), arch.grid,
                                                              rows, 0))
        precision, scaler = Precision.resolve("fp32", torch.device("cpu")), torch.amp.GradScaler("cpu", enabled=False)
        times = []
        for i in range(steps + 3):
            t = time.perf_counter()
            train_step(model, opt, [lambda: model(clip, enc, dec)[0]], precision, scaler, None, i)
            times.append(time.perf_counter() - t)
        return times[3:]

    times = ray.get(run.remote())
    return {"step_s": statistics.median(times), "p90_s": float(np.percentile(times, 90))}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--set", dest="extra", action="append", default=[], help="extra recipe overrides")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             object_store_memory=512 * 1024 * 1024)
    storage = tempfile.mkdtemp(prefix="bench-train-input-")
    runs, alone = [], []
    for k in range(args.repeats):
        cfg = recipe(args.shards, storage, f"run{k}", args.steps, args.extra)
        runs.append(pipeline_run(cfg))
        alone.append(model_only(cfg.data.batch_size, cfg.data.num_sample, min(args.steps, 200)))
        print(f"repeat {k}: pipeline step {runs[-1]['step_s']:.4f} s (data wait {runs[-1]['data_wait']}), "
              f"model alone {alone[-1]['step_s']:.4f} s", file=sys.stderr)
    ratios = [r["step_s"] / a["step_s"] for r, a in zip(runs, alone, strict=True)]
    result = {"steps": args.steps, "cpus": args.cpus, "machine_cpus": os.cpu_count(), "overrides": args.extra,
              "runs": runs, "model_only": alone, "ratio_step_vs_model_only": [round(r, 3) for r in ratios],
              "load_avg": os.getloadavg()}
    print(f"{'repeat':<8}{'pipeline step (s)':>20}{'data wait':>12}{'model only (s)':>16}{'ratio':>8}")
    for k, (r, a, q) in enumerate(zip(runs, alone, ratios, strict=True)):
        wait = "-" if r["data_wait"] is None else f"{r['data_wait']:.2f}"
        print(f"{k:<8}{r['step_s']:>20.4f}{wait:>12}{a['step_s']:>16.4f}{q:>8.2f}")
    print("memory peaks (MB, largest process per role) of the last run:")
    for role, m in runs[-1]["memory_mb"].items():
        print(f"  {role:<40} hwm {m['hwm']:8.0f}  uss {m['uss']:8.0f}  pss {m['pss']:8.0f}  x{m['processes']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
