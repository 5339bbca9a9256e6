"""Search index at scale: build time, query latency, recall@10, memory and size per vector at 10^5 and 10^6 vectors.

    python bench/search_scale.py [--sizes 100000 1000000] [--dim 768] [--kinds flat hnsw] [--json out.json]

Vectors are synthetic (clustered: 1000 Gaussian centres, unit length, as clip features of many videos of few
scenes are); queries are stored vectors plus noise of norm ~1.2. Each (size, kind) runs in its own process, so the
memory figure is that process's resident-set growth over the build (the vectors themselves are counted apart).
Latency is one query at a time (what /v1/search does), p50 and p99 over `--queries`; recall@10 against exact search.
The index is videomae/search.py's (`make_faiss_index`): the numbers `trainer/search.py build --kind` gives.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from videomae.search import make_faiss_index, normalized

K = 10


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def data(n: int, dim: int, queries: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, dim), dtype=np.float32)
    x = np.empty((n, dim), np.float32)
    for i in range(0, n, 100_000):  # in blocks: no 2x temporary at 10^6
        m = min(100_000, n - i)
        x[i:i + m] = centres[rng.integers(0, 1000, m)] + 0.6 * rng.standard_normal((m, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    # Noise of norm ~1.2 on a unit vector (bench/search_libraries.py's queries): near a stored clip, not on it.
    q = x[rng.choice(n, queries, replace=False)] + (1.2 / np.sqrt(dim)) * rng.standard_normal((queries, dim),
                                                                                              dtype=np.float32)
    return x, normalized(q)


def exact_top(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    best = np.zeros((len(q), 0), np.int64)
    scores = np.zeros((len(q), 0), np.float32)
    for i in range(0, len(x), 200_000):
        s = q @ x[i:i + 200_000].T
        scores = np.concatenate([scores, s], 1)
        best = np.concatenate([best, np.arange(i, i + s.shape[1])[None].repeat(len(q), 0)], 1)
        keep = np.argsort(-scores, 1)[:, :K]
        scores, best = np.take_along_axis(scores, keep, 1), np.take_along_axis(best, keep, 1)
    return best


def one(n: int, dim: int, kind: str, queries: int, threads: int) -> dict:
    import faiss

    x, q = data(n, dim, queries)
    truth = exact_top(x, q)
    before = rss_bytes()
    t = time.perf_counter()
    index, kind = make_faiss_index(x, kind, threads)
    build = time.perf_counter() - t
    grown = rss_bytes() - before
    size = faiss.serialize_index(index).nbytes
    lat = []
    got = []
    for v in q:
        t = time.perf_counter()
        _, rows = index.search(v[None], K)
        lat.append(time.perf_counter() - t)
        got.append(rows[0])
    t = time.perf_counter()
    index.search(q, K)
    batch = time.perf_counter() - t
    recall = float(np.mean([len(set(g) & set(tr)) / K for g, tr in zip(got, truth, strict=True)]))
    return {"n": n, "dim": dim, "kind": kind, "threads": threads or os.cpu_count(), "build_s": round(build, 2),
            "query_p50_ms": round(1000 * float(np.median(lat)), 3),
            "query_p99_ms": round(1000 * float(np.percentile(lat, 99)), 3),
            "batch_qps": round(len(q) / batch, 1), "recall@10": round(recall, 4),
            "index_mb": round(size / 2**20, 1), "bytes_per_vector": round(size / n, 1),
            "rss_growth_mb": round(grown / 2**20, 1), "vectors_mb": round(x.nbytes / 2**20, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--kinds", nargs="+", default=["flat", "hnsw"])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0, help="faiss threads (0: all cores)")
    ap.add_argument("--one", nargs=2, metavar=("N", "KIND"), help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.dim, args.one[1], args.queries, args.threads)), flush=True)
        return
    rows = []
    for n in args.sizes:
        for kind in args.kinds:
            out = subprocess.run([sys.executable, __file__, "--one", str(n), kind, "--dim", str(args.dim),
                                  "--queries", str(args.queries), "--threads", str(args.threads)],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"{n} {kind}: failed\n{out.stderr[-2000:]}", flush=True)
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| vectors | dim | index | build (s) | query p50 (ms) | p99 (ms) | recall@10 | index bytes/vector | "
          "RSS growth (MB) |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['dim']} | {r['kind']} | {r['build_s']} | {r['query_p50_ms']} | {r['query_p99_ms']} | "
              f"{r['recall@10']} | {r['bytes_per_vector']} | {r['rss_growth_mb']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
