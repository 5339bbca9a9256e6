"""Feature extraction throughput: the Ray Data job against plain single-process loops over the same videos.

    python bench/extract.py [--videos 16] [--seconds 6] [--size 128] [--preset tiny] [--actors 1 2] [--json out.json]

Arms, all on the same generated videos (motion clips, `--size` px, `--seconds` at 12 fps), the same model (`--preset`
as initialised: speed does not depend on the weights) and the same windows (the model's clip length, a window every
4 frames, the eval transform):
1. `reference loop`: the reference script's loop (extract_tad_feature.py): one decord reader per video, each window
   decoded on its own (`get_batch`), transformed, and run through the model alone (batch 1). In this process, torch
   with its default threads.
2. `plain loop`: this project's per-video work in one process (`trainer/extract.py --no-ray`): frames decoded and
   transformed once per chunk, windows batched (`ray.batch_size`).
3. `ray, N actors`: the Ray Data job (decode tasks -> N model actors, one torch thread each on CPU) for each N.
Reported: windows (clips) per second over the wall time, which includes each arm's start-up (Ray's actors load the
model; Ray itself is started once, before any arm), and the steady rate after the first features came back (the
job's manifest times it); each with its ratio to the reference loop and to the plain loop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import videomae
from trainer import extract
from trainer.extraction.chunks import Windows, window_plan
from trainer.extraction.config import load_config
from videomae.transforms import eval_clip


def make_videos(out: Path, n: int, seconds: float, size: int) -> Path:
    from ingest.sample_data import encode_frames, render_motion

    labels = ["move left", "move right", "rotate cw", "rotate ccw", "grow", "shrink"]
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        frames = render_motion(labels[i % len(labels)], size, seconds, 12, np.random.default_rng([3, i]))
        encode_frames(frames, 12, out / f"v{i:03d}.mp4")
    return out


def reference_loop(videos: list[Path], model, win: Windows, device: torch.device) -> int:
    """extract_tad_feature.py's loop, with our model and transform: a window at a time."""
    import decord

    n = 0
    with torch.inference_mode():
        for path in videos:
            vr = decord.VideoReader(str(path), num_threads=1)
            for _, idx in window_plan(len(vr), win):
                clip = eval_clip(vr.get_batch(idx).asnumpy(), win.img_size)
                model.forward_pooled(clip[None].to(device))
                n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--gpus-per-actor", type=float, default=None, help="default: 1 when there is a GPU (one per actor)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-extract-"))
    try:
        data = make_videos(tmp / "videos", args.videos, args.seconds, args.size)
        videos = sorted(data.glob("*.mp4"))
        torch.manual_seed(0)
        model = videomae.create_model(args.preset).eval()
        model.save(tmp / "model")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        cfg_of = lambda out, actors: load_config(None, [  # noqa: E731
            f"input.path={data}", f"output={tmp / out}", f"model.source={tmp / 'model'}", "videos_per_part=4",
            f"ray.actors={actors}", f"ray.batch_size={args.batch_size}", "progress_every_s=1000",
            # Actors hold their CPUs; one must stay free for decoding (2 actors on 2 CPUs: half a CPU each).
            f"ray.cpus_per_actor={min(1.0, (args.cpus - 1) / actors):g}",
            *([f"ray.gpus_per_actor={args.gpus_per_actor}"] if args.gpus_per_actor is not None else [])])
        cfg = cfg_of("plain", 1)
        win = Windows(model.cfg.num_frames, 1, 4, "eval", model.cfg.img_size, cfg.windows.windows_per_chunk)
        rows: list[dict] = []

        def record(arm: str, windows: int, seconds: float, manifest: dict | None = None) -> None:
            # Steady state: the rate after the first features came back (the job's manifest times it); the
            # reference loop has no start-up of its own (its model is loaded before the clock starts).
            first = manifest["last_run_first_result_s"] if manifest else 0.0
            steady = manifest["last_run_steady_windows_per_s"] if manifest else round(windows / seconds, 2)
            rows.append({"arm": arm, "windows": windows, "seconds": round(seconds, 2),
                         "clips_per_s": round(windows / seconds, 2), "first_result_s": first,
                         "steady_clips_per_s": steady})
            print(f"  {arm:<18} {windows:6d} windows in {seconds:7.1f} s: {windows / seconds:8.2f} clips/s "
                  f"(first features after {first:.1f} s, then {steady:.2f} clips/s)", flush=True)

        print(f"{len(videos)} videos of {args.seconds:g} s at {args.size} px, model {args.preset} on {device}, "
              f"{args.cpus} CPUs", flush=True)
        t = time.perf_counter()
        n = reference_loop(videos, model.to(device), win, device)
        record("reference loop", n, time.perf_counter() - t)
        t = time.perf_counter()
        m = extract.main(cfg=cfg, no_ray=True)
        record("plain loop", m["counts"]["windows"], time.perf_counter() - t, m)
        import ray

        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        for a in args.actors:
            t = time.perf_counter()
            m = extract.main(cfg=cfg_of(f"ray{a}", a))
            record(f"ray, {a} actor{'s' if a > 1 else ''}", m["counts"]["windows"], time.perf_counter() - t, m)
        for key in ("clips_per_s", "steady_clips_per_s"):
            ref, plain = rows[0][key], rows[1][key]
            for r in rows:
                r[f"{key}_vs_reference_loop"] = round(r[key] / ref, 2)
                r[f"{key}_vs_plain_loop"] = round(r[key] / plain, 2)
        print("\n| arm | windows | wall (s) | clips/s | vs reference loop | vs plain loop | first features (s) "
              "| steady clips/s | vs reference loop | vs plain loop |\n" + "|---" * 10 + "|")
        for r in rows:
            print(f"| {r['arm']} | {r['windows']} | {r['seconds']} | {r['clips_per_s']} "
                  f"| {r['clips_per_s_vs_reference_loop']}x | {r['clips_per_s_vs_plain_loop']}x "
                  f"| {r['first_result_s']} "
                  f"| {r['steady_clips_per_s']} | {r['steady_clips_per_s_vs_reference_loop']}x "
                  f"| {r['steady_clips_per_s_vs_plain_loop']}x |")
        result = {"videos": len(videos), "seconds_per_video": args.seconds, "size": args.size, "preset": args.preset,
                  "device": str(device), "cpus": args.cpus, "gpu": torch.cuda.get_device_name() if device.type ==
                  "cuda" else None, "batch_size": args.batch_size, "rows": rows}
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
