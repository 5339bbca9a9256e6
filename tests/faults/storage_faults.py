"""Storage that fails under the jobs: a full disk (a small tmpfs) and an fsspec filesystem that fails every Nth write
or read (faulty_fs.py). Each scenario: an uninterrupted run at the same location (the reference), the run with the
fault, the checks on what it left (it stopped, its error names a path, no manifest or a complete one, no temporary
file, every file under its final name whole), the fault cleared, a rerun, and the rerun's output compared with the
reference (bench/fault_jobs.py's comparison, the one the kill harness uses).

    python tests/faults/storage_faults.py --json out.json [--quick]      # every scenario, a table (bench/faults.py)

tests/faults/test_storage_faults.py runs a few of them under pytest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
# bench/ after the repository: its ingest.py must not shadow the ingest package.
sys.path[:0] = [str(REPO)] if str(REPO) not in sys.path else []
sys.path.append(str(REPO / "bench"))

import fault_jobs  # noqa: E402
import faulty_fs  # noqa: E402
from faulty_fs import FaultyFileSystem  # noqa: E402


# ---------------------------------------------------------------------------------------------------- the jobs
def run_ingest(root: Path, output: str, source_root: str | None = None) -> None:
    from ingest.config import load_config
    from ingest.steps import run_local

    sets = [f"root={source_root or root}", f"output={output}", "ray.videos_per_part=8"]
    run_local(load_config(str(REPO / "configs/ingest/sample.yaml"), sets))


def model_dir(work: Path) -> Path:
    path = work / "model"
    if not (path / "config.json").exists():
        import torch

        import videomae

        torch.manual_seed(0)
        videomae.create_model("nano").save(path)
    return path


def run_extract(root: Path, output: str, source_root: str | None = None, work: Path | None = None) -> None:
    from trainer import extract
    from trainer.extraction.config import load_config

    manifest = f"{source_root or root}/motion_b.jsonl"
    cfg = load_config(str(REPO / "configs/extract/sample.yaml"),
                      [f"input.path={manifest}", "input.source=motion_b", f"output={output}",
                       f"model.source={model_dir(work)}", "videos_per_part=2", "write_npy=true"])
    extract.main(cfg=cfg, no_ray=True)


JOBS: dict[str, tuple[Callable, type]] = {"ingest": (run_ingest, fault_jobs.IngestJob),
                                          "extract": (run_extract, fault_jobs.ExtractJob)}


# ---------------------------------------------------------------------------------------------------- checks
def left_behind(out: Path, job: fault_jobs.Job) -> list[str]:
    """What a failed run must not leave: temporary files, a file under its final name that does not read whole, a
    manifest over an incomplete dataset."""
    if not out.exists():
        return []
    problems = [f"temporary file {f}" for f in fault_jobs.files_of(out) if ".tmp-" in f]
    for f in fault_jobs.files_of(out):
        path = out / f
        try:
            if f.endswith(".parquet"):
                pq.read_table(path)
            elif f.endswith(".json"):
                json.loads(path.read_text())
        except Exception as e:  # noqa: BLE001 - any failure to read it whole is the finding
            problems.append(f"{f} does not read: {type(e).__name__}")
    return problems + job.visible_problems(out)


class Tmpfs:
    """A tmpfs of `size` at `path` (root only); `resize` clears or makes a full disk."""

    def __init__(self, path: Path, size: str):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def used_kb(self) -> int:
        out = subprocess.run(["df", "-k", str(self.path)], capture_output=True, text=True, check=True).stdout
        return int(out.splitlines()[1].split()[2])

    def close(self) -> None:
        subprocess.run(["umount", str(self.path)], check=True)


def scenario(job_name: str, fault: str, n: int, root: Path, work: Path) -> dict:
    """One fault: `write`/`read` with N (the faulty filesystem), or `full` with N kB of disk (a tmpfs)."""
    run, job_cls = JOBS[job_name]
    job = job_cls(work=work)
    kw = {"work": work} if job_name == "extract" else {}
    disk = None
    if fault == "full":
        disk = Tmpfs(work / "disk", "64m")
        out = work / "disk" / "out"
        uri, source_root = str(out), None
    else:
        out = work / f"out-{fault}"
        uri = f"faulty://{out}"
        source_root = f"faulty://{root}" if fault == "read" else None
    try:
        FaultyFileSystem.configure()
        run(root, uri, source_root=source_root, **kw)
        reference = job.summary(out)
        shutil.rmtree(out)
        if disk is not None:
            disk.resize(f"{n}k")
        FaultyFileSystem.configure(**({"write_every": n} if fault == "write" else
                                      {"read_every": n} if fault == "read" else {}))
        error = None
        try:
            run(root, uri, source_root=source_root, **kw)
        except OSError as e:
            error = str(e)
        injected = list(FaultyFileSystem.injected)
        row = {"job": job_name, "fault": fault, "n": n, "stopped": error is not None, "error": (error or "")[:240],
               "names_path": bool(error) and (str(out) in error or str(root) in error),
               "injected": len(injected) if fault != "full" else None,
               "left_behind": left_behind(out, job)}
        if disk is not None:
            row["disk_used_kb_after_failure"] = disk.used_kb()
            disk.resize("64m")
        FaultyFileSystem.configure()
        run(root, uri, source_root=source_root, **kw)
        row["rerun_problems"] = job.compare(reference, job.summary(out))
        # The first injected fault must be the one that stops the job: a second one means the first was swallowed.
        row["swallowed"] = max(0, len(injected) - 1) if fault != "full" else 0
        row["ok"] = (row["stopped"] and row["names_path"] and not row["swallowed"] and not row["left_behind"]
                     and not row["rerun_problems"])
        return row
    finally:
        FaultyFileSystem.configure()
        shutil.rmtree(out, ignore_errors=True)
        if disk is not None:
            disk.close()


# Every write of the sample ingest fails once across these (7 parts, 3 tables, labels.json, manifest.json: 12); reads
# at a spread of points (manifests, then the source videos' metadata and bytes); the disk full at parts and tables.
FULL = {("ingest", "write"): list(range(1, 13)), ("ingest", "read"): [1, 2, 5, 17, 23, 40, 77],
        ("ingest", "full"): [300, 700], ("extract", "write"): [1, 2, 7, 16, 31, 33],
        ("extract", "read"): [1, 3, 10, 30], ("extract", "full"): [40]}
QUICK = {("ingest", "write"): [1, 9, 12], ("ingest", "read"): [23], ("ingest", "full"): [300],
         ("extract", "write"): [2], ("extract", "full"): [40]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quick", action="store_true", help="a few scenarios (what the tests run)")
    ap.add_argument("--work", type=Path)
    ap.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    args = ap.parse_args(argv)
    from ingest.sample_data import generate

    faulty_fs.install()
    work = args.work or Path(tempfile.mkdtemp(prefix="videomae-storage-faults-"))
    root = work / "sample"
    if not (root / "planted.json").exists():
        generate(root, "small", seed=0)
    rows = []
    for (job, fault), ns in (QUICK if args.quick else FULL).items():
        for n in ns if job in args.jobs else []:
            rows.append(scenario(job, fault, n, root, work / job))
            r = rows[-1]
            print(f"[storage] {job} {fault} {n}: {'ok' if r['ok'] else r} ({r['error'][:120]})", flush=True)
            if args.json:
                args.json.write_text(json.dumps({"scenarios": rows}, indent=2) + "\n")
    from tables import table

    print(table([{"job": r["job"], "fault": r["fault"], "n": r["n"], "stopped": r["stopped"],
                  "names path": r["names_path"], "left behind": len(r["left_behind"]),
                  "rerun identical": not r["rerun_problems"]} for r in rows]))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
