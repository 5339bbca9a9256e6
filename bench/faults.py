"""Faults as figures: every job killed with SIGKILL at seeded moments, rerun, and compared with an uninterrupted run
(docs/reliability.md). Storage faults are tests/faults/storage_faults.py; the API's load and soak, bench/soak.py.

    python bench/faults.py --jobs ingest --kills 20 --runner local --json docs/bench/faults.json   # the ingest figure
    python bench/faults.py --jobs ingest --kills 2 --runner local    # two points (what tests/faults runs)
    python bench/faults.py --jobs extract pretrain                   # the other jobs (not yet measured, see the doc)

For each kill point: run the job into a fresh output, SIGKILL every process of it at the moment (bench/fault_kill.py),
check what a reader would see right then, rerun the same command to the end, and compare its output with the
uninterrupted run's (bench/fault_jobs.py says what is compared per job). A kill point survives when the reader saw
no manifest or a complete dataset, the rerun exited 0 and nothing differs: nothing lost, nothing twice, nothing
changed. Prints a table per job and writes everything to --json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import fault_jobs
from fault_kill import run_job
from tables import table

JOBS = {"ingest": fault_jobs.IngestJob, "extract": fault_jobs.ExtractJob, "pretrain": fault_jobs.PretrainJob}
KILL_JOBS = ("ingest", "extract", "pretrain")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def kill_points(job: fault_jobs.Job, n: int, seed: int, keep: bool = False) -> dict:
    """The uninterrupted run, then `n` kill points each followed by a rerun; one row per kill point."""
    job.setup()
    # One output path for every run: it is part of a job's config (and so of ingest's config digest).
    out = job.work / "out"
    shutil.rmtree(out, ignore_errors=True)
    started_load = load_average()
    ref = run_job(job.argv(out), job.work / "reference.log", env=job.env(), cwd=fault_jobs.REPO, anchor=job.anchor)
    if ref.returncode != 0:
        raise SystemExit(f"{job.name}: the uninterrupted run failed ({ref.returncode}):\n{ref.log[-3000:]}")
    reference = job.summary(out)
    shutil.rmtree(out)
    print(f"[faults] {job.name}: uninterrupted run {ref.elapsed_s:.1f} s, {job.counted(reference)}", flush=True)
    rows = []
    # Timed moments spread over the working time: after the anchor line (start-up excluded), else from the start.
    working_s = ref.elapsed_s - (ref.anchor_s or 0.0)
    for i, moment in enumerate(job.moments(n, working_s, random.Random(seed))):
        first = run_job(job.argv(out), job.work / f"kill-{i:02d}.log", env=job.env(), cwd=fault_jobs.REPO,
                        moment=moment, under=out)
        row = {"point": i, "moment": moment.describe(), "killed": first.killed,
               "killed_at_s": round(first.elapsed_s, 2), "phase": job.phase(out, first.log),
               "processes": first.processes_killed}
        row["reader"] = job.visible_problems(out) if out.exists() else []
        rerun = run_job(job.argv(out), job.work / f"rerun-{i:02d}.log", env=job.env(), cwd=fault_jobs.REPO)
        row["rerun_s"] = round(rerun.elapsed_s, 1)
        row["rerun_rc"] = rerun.returncode
        if rerun.returncode == 0:
            got = job.summary(out)
            row["problems"] = job.after_rerun(out, rerun.log) + job.compare(reference, got)
            row["counted"] = job.counted(got)
        else:
            row["problems"] = [f"rerun exited {rerun.returncode}: {rerun.log[-600:]}"]
        row["survived"] = not row["problems"] and not row["reader"]
        rows.append(row)
        print(f"[faults] {job.name} #{i} {row['moment']} -> {'killed' if first.killed else 'finished first'} at "
              f"{row['killed_at_s']} s ({row['phase']}), rerun {row['rerun_s']} s: "
              f"{'ok' if row['survived'] else row['reader'] + row['problems']}", flush=True)
        if keep:  # the rerun's output
            shutil.rmtree(job.work / f"kill-{i:02d}", ignore_errors=True)
            out.rename(job.work / f"kill-{i:02d}")
        shutil.rmtree(out, ignore_errors=True)
    return {"job": job.name, "reference_s": round(ref.elapsed_s, 1), "reference": job.counted(reference),
            "kill_points": rows, "tried": len(rows), "killed": sum(r["killed"] for r in rows),
            "survived": sum(r["survived"] for r in rows),
            "killed_and_survived": sum(r["survived"] and r["killed"] for r in rows), "load_average_start": started_load,
            "load_average_end": load_average(), "notes": job.notes}


def kill_table(result: dict) -> str:
    phases: dict[str, list[dict]] = {}
    for r in result["kill_points"]:
        phases.setdefault(r["phase"], []).append(r)
    rows = [{"job": result["job"], "phase at kill": phase, "kill points": len(rs),
             "killed": sum(r["killed"] for r in rs), "survived": sum(r["survived"] for r in rs),
             "reader saw partial": sum(bool(r["reader"]) for r in rs),
             "rows lost/extra/changed/dup": sum(len(r["problems"]) for r in rs)} for phase, rs in phases.items()]
    return table(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", nargs="+", default=list(KILL_JOBS), choices=list(JOBS))
    ap.add_argument("--kills", type=int, nargs="+", default=None,
                    help="kill points per job, in --jobs order (default: ingest 20, extract 10, pretrain 10)")
    ap.add_argument("--runner", choices=["ray", "local"], default="ray",
                    help="ingest and extraction: on Ray (in-process cluster) or --no-ray")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the output of every rerun")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    defaults = {"ingest": 20, "extract": 10, "pretrain": 10}
    kills = dict(zip(args.jobs, args.kills, strict=False)) if args.kills else {}
    work = args.work or Path(tempfile.mkdtemp(prefix="videomae-faults-"))
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_start": load_average()}, "seed": args.seed, "jobs": {}}
    t0 = time.monotonic()
    for name in args.jobs:
        job_cls = JOBS[name]
        kw = {"runner": args.runner} if name in ("ingest", "extract") else {}
        job = job_cls(work=work / name, **kw)
        job.work.mkdir(parents=True, exist_ok=True)
        result = kill_points(job, kills.get(name, defaults[name]), args.seed, args.keep)
        report["jobs"][name] = result
        print(kill_table(result), flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    report["machine"]["load_average_end"] = load_average()
    report["elapsed_s"] = round(time.monotonic() - t0, 1)
    for name, result in report["jobs"].items():
        print(f"{name}: {result['survived']}/{result['tried']} points survived; {result['killed']} of them killed the "
              f"job before its end, {result['killed_and_survived']} of those survived")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r["survived"] == r["tried"] for r in report["jobs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
