"""Ingest benchmark: pipeline throughput against the ffmpeg decode floor, and dedupe scaling.

    python bench/ingest.py [--videos-dir DIR] [--sizes 10000 100000 1000000] [--json out.json]

1. Throughput: generates the default sample set (a few hundred videos; `python -m ingest.sample_data`), runs the
   whole Ray pipeline on it (probe, fingerprint, dedupe, clips, write), and times `ffmpeg -f null` decoding the
   same files with as many processes as CPUs: the floor any pipeline that decodes every frame pays.
2. Dedupe: LSH keys + candidate pairs + verification on N synthetic signatures with 1% planted noisy,
   time-shifted copies; prints seconds, candidate pairs and recall per N (growth should be ~linear).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a plain file from the repo root

from ingest import dedupe, signature  # noqa: E402
from ingest.config import Dedupe, IngestConfig, load_config  # noqa: E402
from ingest.sample_data import generate, sources_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def ffmpeg_floor(files: list[Path], workers: int) -> float:
    def decode(f: Path) -> None:
        subprocess.run(["ffmpeg", "-v", "quiet", "-threads", "1", "-i", str(f), "-f", "null", "-"], check=False)

    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(decode, files))
    return time.perf_counter() - t


def bench_pipeline(videos_dir: Path | None, cpus: int) -> dict:
    import ray

    from ingest.pipeline import run

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    root = videos_dir or tmp / "videos"
    if videos_dir is None:
        t = time.perf_counter()
        generate(root, "default", workers=cpus)
        print(f"generated sample set in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    base = load_config(ROOT / "configs/ingest/sample.yaml").model_dump()
    base.update(output=str(tmp / "shards"), sources=sources_config(root))
    cfg = IngestConfig.model_validate(base)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    t = time.perf_counter()
    manifest = run(cfg)
    wall = time.perf_counter() - t
    ray.shutdown()
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".mp4", ".avi", ".mkv", ".webm")]
    mb = sum(p.stat().st_size for p in files) / 1e6
    floor = ffmpeg_floor(files, cpus)
    c = manifest["counts"]["total"]
    return {
        "videos": c["seen"],
        "kept": c["kept"],
        "clips": c["clips"],
        "input_MB": round(mb, 2),
        "pipeline_s": round(wall, 2),
        "clips_per_s": round(c["clips"] / wall, 2),
        "MB_per_s": round(mb / wall, 3),
        "ffmpeg_decode_s": round(floor, 2),
        "ratio_vs_ffmpeg": round(wall / floor, 2),
    }


def synthetic_signatures(n: int, k: int, rng: np.random.Generator, dup_frac: float = 0.01):
    """Smooth random videos (a random walk over samples) and noisy copies trimmed by one sample."""
    sigs = np.empty((n, k, signature.L, signature.D), np.uint8)
    for lo in range(0, n, 100_000):  # in chunks: int16 temporaries for 10^6 videos would need gigabytes
        m = min(n, lo + 100_000) - lo
        start = rng.integers(20, 235, (m, 1, signature.L, signature.D), dtype=np.int16)
        walk = rng.integers(-12, 13, (m, k, 1, signature.D), dtype=np.int16).cumsum(1, dtype=np.int16)
        sigs[lo : lo + m] = np.clip(start + walk, 0, 255)
    lens = np.full(n, k)
    m = int(n * dup_frac)
    src = rng.choice(n - m, m, replace=False)
    copies = np.arange(n - m, n)
    shifted = np.zeros_like(sigs[src])
    shifted[:, : k - 1] = sigs[src, 1:]  # first sample trimmed
    noise = rng.integers(-4, 5, shifted.shape, dtype=np.int16)
    sigs[copies] = np.clip(shifted.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    lens[copies] = k - 1
    return sigs, lens, set(zip(src.tolist(), copies.tolist(), strict=True))


def bench_dedupe(sizes: list[int], k: int = 6) -> list[dict]:
    rng = np.random.default_rng(0)
    cfg = Dedupe()
    out = []
    for n in sizes:
        sigs, lens, planted = synthetic_signatures(n, k, rng)
        t0 = time.perf_counter()
        keys, owners = dedupe.lsh_keys(sigs, lens, cfg)
        t1 = time.perf_counter()
        pairs, skipped = dedupe.candidate_pairs(keys, owners, cfg.max_bucket)
        t2 = time.perf_counter()
        dist = dedupe.verify(pairs, sigs, lens, cfg)
        t3 = time.perf_counter()
        hits = {tuple(p) for p, d in zip(pairs.tolist(), dist.tolist(), strict=True) if d <= cfg.threshold}
        out.append(
            {
                "n": n,
                "keys_s": round(t1 - t0, 2),
                "pairs_s": round(t2 - t1, 2),
                "verify_s": round(t3 - t2, 2),
                "total_s": round(t3 - t0, 2),
                "candidates": int(len(pairs)),
                "recall": round(len(hits & planted) / max(1, len(planted)), 4),
                "false_merges": len(hits - planted),
                "skipped_buckets": skipped,
            }
        )
        print(out[-1], file=sys.stderr)
        del sigs, keys, owners, pairs
    return out


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    w = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    lines = ["  ".join(c.rjust(x) for c, x in zip(cols, w, strict=True))]
    lines += ["  ".join(str(r[c]).rjust(x) for c, x in zip(cols, w, strict=True)) for r in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos-dir", type=Path, help="an existing sample tree (default: generate one)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    results: dict = {"cpus": args.cpus}
    if not args.skip_pipeline:
        results["pipeline"] = bench_pipeline(args.videos_dir, args.cpus)
        print(f"pipeline vs ffmpeg decode floor ({args.cpus} CPUs)")
        print(table([results["pipeline"]]))
    results["dedupe"] = bench_dedupe(args.sizes)
    print("dedupe scaling (synthetic signatures, 1% planted copies)")
    print(table(results["dedupe"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
