"""Ingest benchmark: pipeline throughput against the ffmpeg decode floor, and dedupe scaling.

    python bench/ingest_pipeline.py [--videos-dir DIR] [--sizes 10000 100000 1000000] [--json out.json]

1. Throughput: generates the default sample set (a few hundred videos; `python -m ingest.sample_data`), runs the
   whole Ray pipeline on it (probe, fingerprint, dedupe, clips, write), and times `ffmpeg -f null` decoding the
   same files with as many processes as CPUs: the floor any pipeline that decodes every frame pays.
2. Dedupe: LSH keys + candidate pairs + verification on N synthetic signatures (16 samples: 8 s at 0.5 s) with 1%
   planted noisy copies of three kinds: the first sample trimmed (`trim`), starting 3 s later (`shift`, beyond the
   old 2 s offset limit), a corrupt 2 s stretch in the middle (`damaged`); prints seconds, candidate pairs, recall
   per kind and false merges per N for the default config and, in the same run, the old one (first 6 samples
   indexed, offsets up to 2 s, the mean over every aligned sample) as the baseline (growth should be ~linear).
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
from tables import table  # bench/tables.py (bench/ is on the path when a script runs)

from ingest import dedupe, signature
from ingest.config import Dedupe, IngestConfig, load_config
from ingest.sample_data import generate, sources_config

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
    """Random videos (a random walk over samples, steps of up to +-30 per value: neighbouring samples 0.5 s apart
    differ by ~0.056, above the 0.04 threshold, as moving content does) and noisy copies of three kinds (module doc);
    returns (sigs, lens, {kind: {(original, copy)}})."""
    sigs = np.empty((n, k, signature.L, signature.D), np.uint8)
    for lo in range(0, n, 100_000):  # in chunks: int16 temporaries for 10^6 videos would need gigabytes
        m = min(n, lo + 100_000) - lo
        start = rng.integers(20, 235, (m, 1, signature.L, signature.D), dtype=np.int16)
        walk = rng.integers(-30, 31, (m, k, 1, signature.D), dtype=np.int16).cumsum(1, dtype=np.int16)
        sigs[lo : lo + m] = np.clip(start + walk, 0, 255)
    lens = np.full(n, k)
    m = int(n * dup_frac) // 3 * 3
    src = rng.choice(n - m, m, replace=False)
    copies = np.arange(n - m, n)
    planted = {}
    for kind, part in zip(("trim", "shift", "damaged"), np.split(np.arange(m), 3), strict=True):
        s_, c_ = src[part], copies[part]
        if kind == "damaged":
            made, length = sigs[s_].astype(np.int16), np.full(len(part), k)
            mid = k // 2 - 2
            made[:, mid : mid + 4] = rng.integers(0, 256, made[:, mid : mid + 4].shape, dtype=np.int16)
        else:
            cut = 1 if kind == "trim" else min(6, k - 3)  # 6 samples: 3 s later at 0.5 s per sample
            made = np.zeros_like(sigs[s_], dtype=np.int16)
            made[:, : k - cut] = sigs[s_, cut:]
            length = np.full(len(part), k - cut)
        sigs[c_] = np.clip(made + rng.integers(-4, 5, made.shape, dtype=np.int16), 0, 255).astype(np.uint8)
        lens[c_] = length
        planted[kind] = set(zip(s_.tolist(), c_.tolist(), strict=True))
    return sigs, lens, planted


CONFIGS = {
    "default": Dedupe(),
    "old (baseline)": Dedupe(max_offset_s=2.0, match_share=1.0, overlap_share=0.0, lsh_every=0),
}


def bench_dedupe(sizes: list[int], k: int = 16) -> list[dict]:
    out = []
    for n in sizes:
        sigs, lens, planted = synthetic_signatures(n, k, np.random.default_rng(0))
        every = set().union(*planted.values())
        for name, cfg in CONFIGS.items():
            t0 = time.perf_counter()
            keys, owners = dedupe.lsh_keys(sigs, lens, cfg)
            t1 = time.perf_counter()
            pairs, skipped = dedupe.candidate_pairs(keys, owners, cfg.max_bucket)
            t2 = time.perf_counter()
            dist = dedupe.verify(pairs, sigs, lens, cfg)
            t3 = time.perf_counter()
            hits = {tuple(p) for p, d in zip(pairs.tolist(), dist.tolist(), strict=True) if d <= cfg.threshold}
            row = {"n": n, "config": name, "keys_s": round(t1 - t0, 2), "pairs_s": round(t2 - t1, 2),
                   "verify_s": round(t3 - t2, 2), "total_s": round(t3 - t0, 2), "candidates": int(len(pairs))}
            row.update({f"recall_{kind}": round(len(hits & p) / max(1, len(p)), 4) for kind, p in planted.items()})
            row.update({"false_merges": len(hits - every), "skipped_buckets": skipped})
            out.append(row)
            print(out[-1], file=sys.stderr)
            del keys, owners, pairs
        del sigs
    return out


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
    print("dedupe scaling (synthetic signatures of 16 samples, 1% planted copies: trimmed, shifted 3 s, damaged)")
    print(table(results["dedupe"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
