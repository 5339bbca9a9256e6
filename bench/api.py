"""API benchmark: latency and throughput with and without micro-batching, and the API's overhead over the model.

    python bench/api.py [--preset tiny] [--seconds 8] [--rounds 4] [--concurrency 1 4 8] [--threads 1] [--json out.json]

Everything is measured in the same run on the same machine:
1. The bare model: `forward_pooled` on one clip (batch 1) and on `max_batch` clips, in this process with the
   server's thread count; and the in-process pipeline the API runs per request (probe + decode + eval_clip +
   forward), through the same library calls.
2. The API: two real servers (`python -m api` subprocesses on loopback), micro-batching on (max_batch 8, max_wait
   10 ms) and off (max_batch 1), both up at once, each driven by C closed-loop clients (C = 1, 4, 8) posting the same
   1-clip upload to /v1/embed. The two modes alternate within each level (`--rounds`), so load from other processes
   hits both alike. Reported: p50/p95 latency, requests/s, the ratios batched / unbatched and API p50 / bare
   forward, and from the server's /metrics the mean batch size and the model time per clip.

The clients run on the same CPUs as the server (loopback); on a small shared machine that costs the server CPU
time, equally in both modes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

import videomae
from videomae.transforms import eval_clip
from videomae.video import FrameReader, clip_indices, probe

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def bare_model(model_dir: Path, video: Path, threads: int, max_batch: int, repeat: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    model = videomae.load_model(model_dir).eval()
    c = model.cfg
    indices = clip_indices(clip_len=c.num_frames)  # the first clip, read as the API reads it
    clip = eval_clip(FrameReader.from_claim(video, probe(video)).read(indices), c.img_size)
    one, many = clip[None], clip[None].repeat(max_batch, 1, 1, 1, 1)
    with torch.inference_mode():
        for _ in range(3):
            model.forward_pooled(one)
        f1 = timed(lambda: model.forward_pooled(one), repeat)
        fb = timed(lambda: model.forward_pooled(many), max(3, repeat // 4))

        def pipeline():
            frames = FrameReader.from_claim(video, probe(video)).read(clip_indices(clip_len=c.num_frames))
            model.forward_pooled(eval_clip(frames, c.img_size)[None])

        pipe = timed(pipeline, max(5, repeat // 2))
    return {
        "forward_b1_p50_s": statistics.median(f1),
        f"forward_b{max_batch}_per_clip_s": statistics.median(fb) / max_batch,
        "pipeline_p50_s": statistics.median(pipe),
    }


def start(model_dir: Path, tmp: Path, port: int, threads: int, max_batch: int, wait_ms: float) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOMAE_")}
    env.update(
        {
            "VIDEOMAE_MODEL": str(model_dir),
            "VIDEOMAE_PORT": str(port),
            "VIDEOMAE_TORCH_THREADS": str(threads),
            "VIDEOMAE_MAX_BATCH": str(max_batch),
            "VIDEOMAE_MAX_WAIT_MS": str(wait_ms),
            "VIDEOMAE_QUEUE_SIZE": "64",
            "VIDEOMAE_LOG_LEVEL": "warning",
            "VIDEOMAE_TMP_DIR": str(tmp),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "api"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / f"server-{port}.log").open("w"),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp / f"server-{port}.log").read_text()[-2000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready")


def drive(url: str, data: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = []
    lock = threading.Lock()
    with httpx.Client(base_url=url, timeout=120) as c:  # warm-up, not counted
        for _ in range(2):
            c.post("/v1/embed", files={"file": ("v", data)}, params={"window_stride": 100000})
    stop = time.monotonic() + seconds

    def client():
        with httpx.Client(base_url=url, timeout=120) as c:
            while time.monotonic() < stop:
                t = time.perf_counter()
                r = c.post("/v1/embed", files={"file": ("v", data)}, params={"window_stride": 100000})
                dt = time.perf_counter() - t
                with lock:
                    (latencies.append(dt) if r.status_code == 200 else errors.append(r.status_code))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.perf_counter() - t0
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "p50_s": pct(latencies, 0.5),
        "p95_s": pct(latencies, 0.95),
        "rps": len(latencies) / wall,
    }


def model_counters(url: str) -> dict[str, float]:
    """Cumulative batch count, clips and forward seconds of the embed op, from the server's /metrics."""
    text = httpx.get(url + "/metrics", timeout=10).text
    want = {"videomae_api_batch_size_count": "batches", "videomae_api_batch_size_sum": "clips",
            "videomae_api_forward_seconds_sum": "forward_s"}
    out = dict.fromkeys(want.values(), 0.0)
    for line in text.splitlines():
        name = line.split("{")[0]
        if name in want and 'op="embed"' in line:
            out[want[name]] = float(line.split()[-1])
    return out


def measure(url: str, data: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    before = model_counters(url)
    r = drive(url, data, concurrency, seconds)
    after = model_counters(url)
    d = {k: after[k] - before[k] for k in after}
    r["mean_batch"] = d["clips"] / max(d["batches"], 1)
    r["forward_ms_per_clip"] = 1e3 * d["forward_s"] / max(d["clips"], 1)
    return r


def merge(runs: list[dict]) -> dict[str, float]:
    """Rounds of one (mode, concurrency): medians of the per-round statistics, requests summed."""
    keys = ("p50_s", "p95_s", "rps", "mean_batch", "forward_ms_per_clip")
    out = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["requests"] = sum(r["requests"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--seconds", type=float, default=8.0, help="per mode and concurrency level, over all rounds")
    ap.add_argument("--rounds", type=int, default=4, help="alternations of the two modes per level")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the server and the bare model")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-api-") as d:
        tmp = Path(d)
        torch.manual_seed(0)
        videomae.create_model(args.preset).save(tmp / "model")
        video = tmp / "clip.mp4"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=160x120:rate=25",
                "-t",
                "1",
                "-pix_fmt",
                "yuv420p",
                str(video),
            ],
            check=True,
        )
        data = video.read_bytes()
        bare = bare_model(tmp / "model", video, args.threads, args.max_batch, repeat=30)
        modes = {"batched": (args.max_batch, args.max_wait_ms), "unbatched": (1, 0.0)}
        base_port = 18700 + os.getpid() % 500
        procs = {m: start(tmp / "model", tmp, base_port + i, args.threads, mb, wait)
                 for i, (m, (mb, wait)) in enumerate(modes.items())}
        urls = {m: f"http://127.0.0.1:{base_port + i}" for i, m in enumerate(modes)}
        rows = []
        try:
            # Both servers stay up; modes alternate within each level and round, so a noisy neighbour hits both alike.
            for conc in args.concurrency:
                runs: dict[str, list[dict]] = {m: [] for m in modes}
                for _ in range(args.rounds):
                    for m in modes:
                        runs[m].append(measure(urls[m], data, conc, args.seconds / args.rounds))
                for m in modes:
                    rows.append({"mode": m, "concurrency": conc, **merge(runs[m])})
        finally:
            for p in procs.values():
                p.terminate()
                p.wait(timeout=30)

    by = {(r["mode"], r["concurrency"]): r for r in rows}
    print(f"\npreset {args.preset}, torch threads {args.threads}, {os.cpu_count()} CPUs, {args.seconds:g} s per level")
    print(
        f"bare forward, batch 1: {bare['forward_b1_p50_s'] * 1e3:.1f} ms; batch {args.max_batch}: "
        f"{bare[f'forward_b{args.max_batch}_per_clip_s'] * 1e3:.1f} ms/clip; in-process probe+decode+transform+"
        f"forward: {bare['pipeline_p50_s'] * 1e3:.1f} ms"
    )
    print(
        f"{'mode':<10} {'conc':>4} {'req':>5} {'err':>4} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7} "
        f"{'x unbatched':>11} {'p50/fwd':>8} {'batch':>6} {'fwd ms/clip':>11}"
    )
    for r in rows:
        base = by.get(("unbatched", r["concurrency"]))
        ratio = r["rps"] / base["rps"] if base and base["rps"] else float("nan")
        print(
            f"{r['mode']:<10} {r['concurrency']:>4} {r['requests']:>5} {r['errors']:>4} {r['p50_s'] * 1e3:>8.1f} "
            f"{r['p95_s'] * 1e3:>8.1f} {r['rps']:>7.2f} {ratio:>11.2f} {r['p50_s'] / bare['forward_b1_p50_s']:>8.2f} "
            f"{r['mean_batch']:>6.2f} {r['forward_ms_per_clip']:>11.1f}"
        )
    c1 = by.get(("unbatched", 1))
    if c1:
        fwd, pipe = bare["forward_b1_p50_s"], bare["pipeline_p50_s"]
        print(
            f"API overhead at concurrency 1 (unbatched): p50 {c1['p50_s'] * 1e3:.1f} ms vs bare forward "
            f"{fwd * 1e3:.1f} ms ({c1['p50_s'] / fwd:.2f}x) and vs the in-process pipeline {pipe * 1e3:.1f} ms "
            f"({c1['p50_s'] / pipe:.2f}x)"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "bare": bare, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
