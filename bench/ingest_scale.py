"""Dedupe at scale: the ingest's dedupe stages (ingest/dedupe_stages.py) on real Ray over N synthetic videos
(ingest/synthetic.py: fingerprints with planted copies and near misses, no video decoded), one process per N.

    python bench/ingest_scale.py --sizes 10000 100000 1000000 --json docs/bench/ingest_scale.json
    python bench/ingest_scale.py --sizes 100000 --kill-stages buckets verify   # + killed inside a stage, rerun

Per N: the wall time of each stage, the driver's peak RSS (its kernel high-water mark, VmHWM: it holds the block
boundaries and counts only, so it should not grow with N), the largest Ray worker's peak RSS, the bytes each stage
wrote (the shuffle volume: the stages pass files, not objects, so Ray's object store never spills), recall of each
planted copy kind and false merges. Up to `--identity-max` videos, the one-process rule (`ingest.dedupe
.find_duplicates`) runs on the same videos afterwards and the duplicates (ids, keepers, kinds, distances) and counts
must be identical. `--kill-stages`: the same N again, killed (SIGKILL to the whole process group) once the stage's
first task is done, then rerun over the same work directory; the rerun must skip the finished tasks and give the
uninterrupted run's duplicates. Generation (writing the blocks, what fingerprinting would write) is timed apart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from fault_kill import Moment, run_job
from processes import Watch
from tables import table

ROOT = Path(__file__).resolve().parents[1]


def _hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _generate(item) -> dict:
    from ingest import dedupe_stages

    syn, work, b = item
    if dedupe_stages.storage.exists(work.block_uri(b)):
        return {"bytes": 0}
    blk = syn.block(b)
    np.save(Path(work.root) / "planted" / f"{b:05d}.npy", blk["planted"])
    return {"bytes": dedupe_stages.write_block(work, b, blk["sigs"], blk["lens"], blk["sha"], blk["eval"])}


def result_digest(ids: np.ndarray, kept: np.ndarray, kind: np.ndarray, dist: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in (ids.astype(np.int64), kept.astype(np.int64), np.array([k == "near" for k in kind]), dist):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def one(n: int, work_dir: Path, cpus: int, identity_max: int, block_videos: int, partition_videos: int) -> dict:
    """One N in this process (the driver): generate, run the stages on Ray, score; the identity check last."""
    import ray

    from ingest import dedupe, dedupe_stages, pipeline, synthetic
    from ingest.config import Dedupe

    cfg = Dedupe(block_videos=block_videos, partition_videos=partition_videos)
    syn = synthetic.Synthetic(n=n, block_videos=block_videos, k=cfg.max_samples)
    starts, partitions = dedupe_stages.layout(n, cfg)
    assert starts == syn.starts
    work = dedupe_stages.Work(str(work_dir), starts, partitions, cfg)
    (work_dir / "planted").mkdir(parents=True, exist_ok=True)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             object_store_memory=256 * 1024**2)
    with Watch(interval=1.0) as watch:
        t0 = time.perf_counter()
        pipeline.map_tasks("generate", _generate, [(syn, work, b) for b in range(work.blocks)])
        gen_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = dedupe_stages.run_stages(work, pipeline.map_tasks)
        dedupe_s = time.perf_counter() - t0
    driver_mb = _hwm_mb()
    workers = {role: p for role, p in watch.peaks().items() if role.startswith("ray::")}
    ray.shutdown()
    planted = np.concatenate([np.load(p) for p in sorted((work_dir / "planted").glob("*.npy"))])
    dropped = dict(zip(result.ids.tolist(), result.kept.tolist(), strict=True))
    row = {"n": n, "blocks": work.blocks, "partitions": work.partitions, "generate_s": round(gen_s, 1),
           "dedupe_s": round(dedupe_s, 1), "stages": result.stages, "stats": result.stats,
           "driver_peak_mb": driver_mb,
           "worker_peak_mb": max((p["hwm"] for p in workers.values()), default=0.0),
           "process_peaks_mb": {role: p["hwm"] for role, p in watch.peaks().items()},  # every kind: raylet, GCS...
           "shuffle_mb": round(sum(s["bytes"] for s in result.stages.values()) / 1e6, 1),
           "digest": result_digest(result.ids, result.kept, result.kind, result.distance),
           **synthetic.score(planted, result.ids, result.kept, lambda o: dropped.get(o, o))}
    if n <= identity_max:
        t0 = time.perf_counter()
        recs = synthetic.records(syn)
        ref = dedupe.find_duplicates(recs, cfg)
        rid = {r.video_id: int(r.key) for r in recs}
        rows = sorted((rid[d["video_id"]], rid[d["kept_video_id"]], d["kind"], d["distance"]) for d in ref.duplicates)
        mine = sorted(zip(result.ids.tolist(), result.kept.tolist(), result.kind.tolist(), result.distance.tolist(),
                          strict=True))
        row["identical_to_one_process"] = rows == mine and ref.stats == result.stats
        row["one_process_s"] = round(time.perf_counter() - t0, 1)
    return row


def _child(args, n: int, work_dir: Path) -> list[str]:
    return [sys.executable, __file__, "--one", str(n), "--work", str(work_dir), "--cpus", str(args.cpus),
            "--identity-max", str(args.identity_max), "--block-videos", str(args.block_videos),
            "--partition-videos", str(args.partition_videos)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--work", type=Path, default=Path("/tmp/ingest_scale"))
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--identity-max", type=int, default=100_000)
    ap.add_argument("--block-videos", type=int, default=50_000)
    ap.add_argument("--partition-videos", type=int, default=100_000)
    ap.add_argument("--kill-stages", nargs="*", default=[])
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print("RESULT " + json.dumps(one(args.one, args.work, args.cpus, args.identity_max, args.block_videos,
                                         args.partition_videos)), flush=True)
        return
    rows, kills = [], []
    for n in args.sizes:
        work_dir = args.work / f"n{n}"
        shutil.rmtree(work_dir, ignore_errors=True)
        out = subprocess.run(_child(args, n, work_dir), capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode or not line:
            sys.exit(f"n={n} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(line[0][7:]))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "stages"}), file=sys.stderr, flush=True)
        for stage in args.kill_stages:
            kdir = args.work / f"n{n}-kill-{stage}"
            shutil.rmtree(kdir, ignore_errors=True)
            kdir.mkdir(parents=True)
            argv = _child(args, n, kdir)
            argv[argv.index("--identity-max") + 1] = "0"
            marker = f"done/{stage}/{'[0-9]' * 5}"  # a finished task's marker (not its temporary name)
            first = run_job(argv, kdir.parent / f"{kdir.name}.log1", moment=Moment(pattern=marker), under=kdir,
                            timeout_s=7200)
            done_at_kill = len(list(kdir.glob(marker)))
            second = run_job(argv, kdir.parent / f"{kdir.name}.log2", timeout_s=7200)
            line = [x for x in second.log.splitlines() if x.startswith("RESULT ")]
            again = json.loads(line[0][7:]) if line else {}
            kills.append({"n": n, "stage": stage, "killed": first.killed, "tasks_done_at_kill": done_at_kill,
                          "reused_on_rerun": again.get("stages", {}).get(stage, {}).get("reused"),
                          "same_duplicates": again.get("digest") == rows[-1]["digest"]})
            print(json.dumps(kills[-1]), file=sys.stderr, flush=True)
            if not args.keep:
                shutil.rmtree(kdir, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    stages = list(rows[0]["stages"]) if rows else []
    print(table([{"N": r["n"], "blocks": r["blocks"], "parts": r["partitions"],
                  **{f"{s} s": r["stages"][s]["wall_s"] for s in stages}, "dedupe s": r["dedupe_s"],
                  "driver MB": r["driver_peak_mb"], "worker MB": r["worker_peak_mb"], "shuffle MB": r["shuffle_mb"],
                  "candidates": r["stats"]["candidates"],
                  "recall min": min(v for k, v in r.items() if k.startswith("recall_")),
                  "false merges": r["false_merges"], "= 1 process": r.get("identical_to_one_process", "-")}
                 for r in rows]))
    for a, b in zip(rows, rows[1:], strict=False):
        print(f"{a['n']} -> {b['n']}: dedupe time x{b['dedupe_s'] / max(a['dedupe_s'], 1e-9):.1f}, "
              f"driver peak x{b['driver_peak_mb'] / max(a['driver_peak_mb'], 1e-9):.2f}")
    if kills:
        print(table([{"N": k["n"], "killed in": k["stage"], "killed": k["killed"],
                      "tasks done at kill": k["tasks_done_at_kill"], "reused on rerun": k["reused_on_rerun"],
                      "same duplicates": k["same_duplicates"]} for k in kills]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "kills": kills, "cpus": args.cpus}, indent=1))


if __name__ == "__main__":
    main()
