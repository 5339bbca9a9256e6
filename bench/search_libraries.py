"""Which nearest-neighbour library for the clip index: faiss-cpu, usearch, hnswlib, LanceDB, measured side by side.

    pip install faiss-cpu usearch hnswlib lancedb      # only faiss-cpu is a project dependency
    for lib in faiss-flat faiss-hnsw usearch-exact usearch-f32 usearch-f16 usearch-i8 hnswlib lancedb-flat \
               lancedb-ivfpq; do python bench/search_libraries.py $lib; done > libraries.jsonl

One library per process (so memory is that library's resident-set growth). N=100,000 unit vectors of D=384
(clustered: 1000 Gaussian centres), 500 queries (perturbed stored vectors), exact top-10 as ground truth, 2 threads.
Parameters: faiss HNSW M=32, efConstruction=128, efSearch=64; usearch connectivity=16, expansion_add=128,
expansion_search=64; hnswlib M=16, ef_construction=128, ef=64; LanceDB IVF_PQ 256 partitions, D/8 sub-vectors,
nprobes=20, refine_factor=10. Latency is one query at a time (p50/p99 over 200); batch_qps is all 500 at once.
Prints one JSON line: build_s, recall@10, query_p50_ms, query_p99_ms, batch_qps, mem_mb, disk_bytes_per_vector.
"""
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

N, D, Q, K = int(os.environ.get("N", 100_000)), int(os.environ.get("D", 384)), 500, 10
THREADS = 2


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((1000, D)).astype(np.float32)
    x = centers[rng.integers(0, 1000, N)] + 0.6 * rng.standard_normal((N, D)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(N, Q, replace=False)] + 1.2 * rng.standard_normal((Q, D)).astype(np.float32) / np.sqrt(D)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q.astype(np.float32)


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def dirsize(p: str) -> int:
    if os.path.isfile(p):
        return os.path.getsize(p)
    return sum(os.path.getsize(os.path.join(a, f)) for a, _, fs in os.walk(p) for f in fs)


def build(name: str, x: np.ndarray, tmp: str):
    """(search(queries) -> ids, path saved or None)."""
    if name.startswith("faiss"):
        import faiss

        faiss.omp_set_num_threads(THREADS)
        if name == "faiss-flat":
            idx = faiss.IndexFlatIP(D)
        else:
            idx = faiss.IndexHNSWFlat(D, 32, faiss.METRIC_INNER_PRODUCT)
            idx.hnsw.efConstruction = 128
        idx.add(x)
        if name != "faiss-flat":
            idx.hnsw.efSearch = 64
        path = os.path.join(tmp, "i.faiss")
        faiss.write_index(idx, path)
        return (lambda qq: idx.search(qq, K)[1]), path
    if name == "usearch-exact":
        from usearch.index import MetricKind
        from usearch.index import search as exact

        return (lambda qq: exact(x, qq, K, MetricKind.IP, exact=True, threads=THREADS).keys), None
    if name.startswith("usearch"):
        from usearch.index import Index

        idx = Index(ndim=D, metric="ip", dtype=name.split("-")[1], connectivity=16, expansion_add=128,
                    expansion_search=64)
        idx.add(np.arange(N), x, threads=THREADS)
        path = os.path.join(tmp, "i.usearch")
        idx.save(path)
        return (lambda qq: idx.search(qq, K, threads=THREADS).keys), path
    if name == "hnswlib":
        import hnswlib

        idx = hnswlib.Index(space="ip", dim=D)
        idx.init_index(max_elements=N, M=16, ef_construction=128)
        idx.set_num_threads(THREADS)
        idx.add_items(x, np.arange(N))
        idx.set_ef(64)
        path = os.path.join(tmp, "i.hnsw")
        idx.save_index(path)
        return (lambda qq: idx.knn_query(qq, k=K)[0]), path
    if name.startswith("lancedb"):
        import lancedb
        import pyarrow as pa

        db = lancedb.connect(os.path.join(tmp, "db"))
        vec = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), D)
        tbl = db.create_table("v", pa.table({"id": np.arange(N), "vector": vec}))
        if name == "lancedb-ivfpq":
            tbl.create_index(metric="dot", num_partitions=256, num_sub_vectors=D // 8)

        def search(qq):
            out = []
            for v in qq:
                s = tbl.search(v).metric("dot").limit(K)
                if name == "lancedb-ivfpq":
                    s = s.nprobes(20).refine_factor(10)
                out.append(s.to_arrow()["id"].to_numpy())
            return np.stack(out)

        return search, os.path.join(tmp, "db")
    raise SystemExit(f"unknown library arm {name}")


def run(name: str) -> dict:
    x, q = data()
    truth = np.argsort(-(q @ x.T), axis=1)[:, :K]
    tmp = tempfile.mkdtemp(prefix="idx-")
    try:
        r0, t0 = rss(), time.perf_counter()
        search, path = build(name, x, tmp)
        build_s, mem = time.perf_counter() - t0, rss() - r0
        t0 = time.perf_counter()
        got = np.asarray(search(q))
        batch_s = time.perf_counter() - t0
        recall = float(np.mean([len(set(g) & set(t)) / K for g, t in zip(got, truth, strict=True)]))
        lat = []
        for v in q[:200]:
            t0 = time.perf_counter()
            search(v[None])
            lat.append(time.perf_counter() - t0)
        return {"library": name, "n": N, "dim": D, "build_s": round(build_s, 2), "recall@10": round(recall, 4),
                "query_p50_ms": round(1000 * float(np.median(lat)), 3),
                "query_p99_ms": round(1000 * float(np.percentile(lat, 99)), 3),
                "batch_qps": round(Q / batch_s, 1), "mem_mb": round(mem / 2**20, 1),
                "disk_bytes_per_vector": round(dirsize(path) / N, 1) if path else None}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1])), flush=True)
