"""The jobs the fault harness kills (bench/faults.py): each one's command, the moments to kill it at, what a reader
may see at a kill, and what a finished output is made of, compared row by row with an uninterrupted run's.

- ingest: `python -m ingest` on the small sample set (the Ray runner, or `--no-ray`); compared: manifest.json
  (but its time fields), labels.json, videos/duplicates/rejects tables, and every clip row by a digest of all of its
  columns (frames included), counted (nothing lost, nothing twice).
- extract: `python trainer/extract.py` over a manifest of sample videos, 2 videos a part; compared: manifest.json
  (but its time fields), rejects, every feature row by (video_id, start_frame) with its vector.
- pretrain: `python trainer/pretrain.py` (nano, Ray Train, a checkpoint every 2 steps); compared: the final
  weights against an uninterrupted run's, the data position and the clips of every step in the final lineage.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from fault_kill import Moment

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
TIME_FIELDS = {"created_at", "elapsed_s", "last_run_s"}  # differ between any two runs by design


def strip_times(manifest: dict) -> dict:
    return {k: v for k, v in manifest.items() if k not in TIME_FIELDS and not k.startswith("last_run_")}


def files_of(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def row_digests(path: Path, key: list[str]) -> list[tuple]:
    """(key..., sha256 of every column's value) for each row of a Parquet file."""
    table = pq.read_table(path)
    cols = table.column_names
    rows = []
    for r in table.to_pylist():
        h = hashlib.sha256()
        for c in cols:
            v = r[c]
            h.update(c.encode())
            h.update(b"".join(v) if isinstance(v, list) and v and isinstance(v[0], bytes)
                     else json.dumps(v, default=str).encode())
        rows.append((*[r[k] for k in key], h.hexdigest()[:20]))
    return rows


def compare_rows(name: str, ref: list[tuple], got: list[tuple]) -> list[str]:
    """Lost, extra, changed and duplicated rows (by key: every tuple item but the last, the digest)."""
    problems = []
    ref_d = {r[:-1]: r[-1] for r in ref}
    got_keys = [r[:-1] for r in got]
    got_d = {r[:-1]: r[-1] for r in got}
    dup = len(got_keys) - len(set(got_keys))
    lost = set(ref_d) - set(got_d)
    extra = set(got_d) - set(ref_d)
    changed = [k for k in set(ref_d) & set(got_d) if ref_d[k] != got_d[k]]
    for what, n in (("lost", len(lost)), ("extra", len(extra)), ("changed", len(changed)), ("duplicated", dup)):
        if n:
            problems.append(f"{name}: {n} rows {what}")
    return problems


def json_or_problem(path: Path) -> tuple[dict | None, str | None]:
    try:
        return json.loads(path.read_text()), None
    except (OSError, ValueError) as e:
        return None, f"{path.name} unreadable: {e}"


def spread_times(n: int, duration_s: float, rng: random.Random, lo: float = 0.03) -> list[float]:
    """n kill times over (lo..1) x duration, one uniformly in each of n equal strata (seeded)."""
    return [duration_s * (lo + (i + rng.random()) / n * (1 - lo)) for i in range(n)]


@dataclass
class Job:
    """One job of the harness; subclasses fill in the command and the checks."""

    work: Path
    name: str = "job"
    notes: list[str] = field(default_factory=list)
    anchor: str | None = None  # a log line after the start-up; timed kill points are spread over the time after it

    def setup(self) -> None: ...

    def argv(self, out: Path) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def moments(self, n: int, duration_s: float, rng: random.Random) -> list[Moment]:
        return [Moment(at_s=t) for t in spread_times(n, duration_s, rng)]

    def visible_problems(self, out: Path) -> list[str]:
        """What a reader started now would find wrong (called with every process of the job dead)."""
        return []

    def phase(self, out: Path, log: str) -> str:
        return "?"

    def after_rerun(self, out: Path, log: str) -> list[str]:
        """What the rerun's own log must show (pre-training: where it resumed)."""
        return []

    def summary(self, out: Path) -> dict:
        """Everything compared (kept in memory, not written out)."""
        raise NotImplementedError

    def compare(self, ref: dict, got: dict) -> list[str]:
        problems = [f"{k} differs" for k in ref if k not in ("rows",) and ref[k] != got.get(k)]
        return problems


# ---------------------------------------------------------------------------------------------------- ingest
@dataclass
class IngestJob(Job):
    """`python -m ingest` on the small sample set (79 inputs: 56 kept, 14 duplicates, 9 rejects, 112 clips)."""

    name: str = "ingest"
    runner: str = "ray"  # or "local" (--no-ray)
    anchor: str | None = "list: source"  # the inputs are listed: start-up (imports, Ray) is over

    @property
    def sample(self) -> Path:
        return self.work / "sample"

    def setup(self) -> None:
        if not (self.sample / "ingest.yaml").exists():
            _run([PY, "-m", "ingest.sample_data", str(self.sample), "--small"])

    def argv(self, out: Path) -> list[str]:
        cmd = [PY, "-m", "ingest", "--config", str(self.sample / "ingest.yaml"), "--set", f"output={out}",
               "--set", "ray.videos_per_part=8"]  # 7 parts: kills land between and inside part writes
        return cmd + (["--no-ray"] if self.runner == "local" else ["--set", "ray.num_cpus=2"])

    def moments(self, n: int, duration_s: float, rng: random.Random) -> list[Moment]:
        """Half at times spread over the working run after the inputs are listed (probe, fingerprint, dedupe, clips:
        most of it; `duration_s` is that time in the uninterrupted run, and the points stop at 90 % of it so that a
        less loaded rerun still gets killed), half on the files of the short last stretch: a part being written,
        the parts written, each table, the manifest's temp file."""
        events = ["clips/part-*.parquet.tmp-*", "clips/part-00000.parquet", "clips/part-00003.parquet",
                  "clips/part-00006.parquet", "videos.parquet.tmp-*", "videos.parquet", "duplicates.parquet",
                  "rejects.parquet", "labels.json.tmp-*", "labels.json", "manifest.json.tmp-*"]
        n_events = n // 2
        timed = [Moment(log_text=self.anchor, delay_s=t)
                 for t in spread_times(n - n_events, 0.9 * duration_s, rng, lo=0.0)]
        chosen = [events[i % len(events)] for i in range(n_events)]
        return timed + [Moment(pattern=p, delay_s=rng.uniform(0, 0.004)) for p in chosen]

    def phase(self, out: Path, log: str) -> str:
        if (out / "manifest.json").exists():
            return "after manifest"
        if (out / "videos.parquet").exists() or any(out.glob("*.parquet.tmp-*")):
            return "tables"
        if (out / "clips").exists():
            return "clips"
        if "dedupe:" in log:
            return "dedupe"
        if "list: source" in log:
            return "probe"
        return "start"

    def visible_problems(self, out: Path) -> list[str]:
        """No manifest (an unfinished dataset, which readers refuse), or a complete one: every part it counts,
        readable, written under its config, and the tables' rows equal to its counts."""
        if not (out / "manifest.json").exists():
            return []
        manifest, problem = json_or_problem(out / "manifest.json")
        if problem:
            return [problem]
        problems = []
        total = manifest["counts"]["total"]
        clips = 0
        for i in range(manifest["num_parts"]):
            part = out / "clips" / f"part-{i:05d}.parquet"
            try:
                meta = json.loads(pq.read_schema(part).metadata[b"videomae.ingest"])
                clips += pq.read_metadata(part).num_rows
            except Exception as e:  # noqa: BLE001 - any failure to read is what we report
                problems.append(f"{part.name}: {type(e).__name__}: {e}")
                continue
            if meta["digest"] != manifest["config_digest"]:
                problems.append(f"{part.name} written under config {meta['digest']}, manifest says "
                                f"{manifest['config_digest']}")
        if clips != total["clips"]:
            problems.append(f"clips: manifest counts {total['clips']}, parts hold {clips}")
        for name, expect in (("videos.parquet", total["kept"]), ("duplicates.parquet", total["duplicates"]),
                             ("rejects.parquet", sum(total["rejected"].values()))):
            try:
                rows = pq.read_metadata(out / name).num_rows
            except Exception as e:  # noqa: BLE001
                problems.append(f"{name}: {type(e).__name__}: {e}")
                continue
            if rows != expect:
                problems.append(f"{name}: manifest counts {expect}, table holds {rows}")
        return problems

    def summary(self, out: Path) -> dict:
        clips = [row for p in sorted((out / "clips").glob("part-*.parquet"))
                 for row in row_digests(p, ["clip_id"])]
        return {
            "manifest": strip_times(json.loads((out / "manifest.json").read_text())),
            "labels": json.loads((out / "labels.json").read_text()),
            "videos": row_digests(out / "videos.parquet", ["video_id"]),
            "duplicates": row_digests(out / "duplicates.parquet", ["video_id"]),
            "rejects": row_digests(out / "rejects.parquet", ["source", "uri"]),
            "files": files_of(out),
            "stray": [f for f in files_of(out) if ".tmp-" in f],
            "rows": {"clips": clips},
        }

    def compare(self, ref: dict, got: dict) -> list[str]:
        problems = []
        if got["stray"]:
            problems.append(f"temporary files left: {got['stray']}")
        for key in ("manifest", "labels", "files"):
            if ref[key] != got[key]:
                extra = sorted(set(got[key]) - set(ref[key])) if key == "files" else ""
                problems.append(f"{key} differs {extra}".rstrip())
        for key in ("videos", "duplicates", "rejects"):
            problems += compare_rows(key, [tuple(r) for r in ref[key]], [tuple(r) for r in got[key]])
        problems += compare_rows("clips", [tuple(r) for r in ref["rows"]["clips"]],
                                 [tuple(r) for r in got["rows"]["clips"]])
        return problems

    def counted(self, summary: dict) -> dict:
        return {"clip rows": len(summary["rows"]["clips"]), "videos": len(summary["videos"]),
                "duplicates": len(summary["duplicates"]), "rejects": len(summary["rejects"])}


# ---------------------------------------------------------------------------------------------------- extract
@dataclass
class ExtractJob(Job):
    """`python trainer/extract.py` over the sample set's motion_a.csv (27 rows: 24 videos a nano model embeds, one
    row whose file is not a video, ...), 2 videos to a part, npy arrays too; a nano model as initialised."""

    name: str = "extract"
    runner: str = "ray"

    @property
    def sample(self) -> Path:
        return self.work / "sample"

    def setup(self) -> None:
        if not (self.sample / "ingest.yaml").exists():
            _run([PY, "-m", "ingest.sample_data", str(self.sample), "--small"])
        if not (self.work / "model" / "config.json").exists():
            _run([PY, "-c", "import sys, torch, videomae; torch.manual_seed(0); "
                            "videomae.create_model('nano').save(sys.argv[1])", str(self.work / "model")])

    def argv(self, out: Path) -> list[str]:
        cmd = [PY, "trainer/extract.py", "--config", "configs/extract/sample.yaml",
               "--set", f"input.path={self.sample / 'motion_a.csv'}", "--set", f"output={out}",
               "--set", f"model.source={self.work / 'model'}", "--set", "videos_per_part=2",
               "--set", "write_npy=true"]
        return cmd + (["--no-ray"] if self.runner == "local" else [])

    def moments(self, n: int, duration_s: float, rng: random.Random) -> list[Moment]:
        events = ["features/part-*.parquet.tmp-*", "features/part-*.parquet", "npy/motion_a/*.npy",
                  "rejects.parquet.tmp-*", "rejects.parquet", "manifest.json.tmp-*"]
        n_events = n // 2
        timed = [Moment(at_s=t) for t in spread_times(n - n_events, duration_s, rng)]
        return timed + [Moment(pattern=events[i % len(events)], delay_s=rng.uniform(0, 0.004),
                               count=1 + rng.randrange(4) if events[i % len(events)].startswith(("features/p", "npy"))
                               else 1) for i in range(n_events)]

    def phase(self, out: Path, log: str) -> str:
        if (out / "manifest.json").exists():
            return "after manifest"
        if (out / "rejects.parquet").exists() or any(out.glob("*.tmp-*")):
            return "rejects+manifest"
        if (out / "features").exists() or (out / "npy").exists():
            return "parts"
        return "start" if "extract:" not in log else "embedding"

    def visible_problems(self, out: Path) -> list[str]:
        if not (out / "manifest.json").exists():
            return []
        manifest, problem = json_or_problem(out / "manifest.json")
        if problem:
            return [problem]
        counts = manifest["counts"]
        rows = sum(pq.read_metadata(p).num_rows for p in (out / "features").glob("part-*.parquet"))
        rejects = pq.read_metadata(out / "rejects.parquet").num_rows
        problems = []
        if rows != counts["windows"]:
            problems.append(f"features: manifest counts {counts['windows']} windows, parts hold {rows}")
        if rejects != counts["rejects"]:
            problems.append(f"rejects: manifest counts {counts['rejects']}, table holds {rejects}")
        return problems

    def summary(self, out: Path) -> dict:
        rows = [r for p in sorted((out / "features").glob("part-*.parquet"))
                for r in row_digests(p, ["video_id", "start_frame"])]
        npy = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()[:20]
               for p in sorted((out / "npy").rglob("*.npy"))}
        return {"manifest": strip_times(json.loads((out / "manifest.json").read_text())),
                "rejects": row_digests(out / "rejects.parquet", ["video_id"]), "npy": npy,
                # Part files are named by the videos they hold, and a rerun groups only what is left: their names
                # may differ from an uninterrupted run's; their rows may not.
                "stray": [f for f in files_of(out) if ".tmp-" in f], "rows": {"features": rows}}

    def compare(self, ref: dict, got: dict) -> list[str]:
        problems = [f"{k} differs" for k in ("manifest", "npy") if ref[k] != got[k]]
        if got["stray"]:
            problems.append(f"temporary files left: {got['stray']}")
        problems += compare_rows("rejects", [tuple(r) for r in ref["rejects"]], [tuple(r) for r in got["rejects"]])
        problems += compare_rows("features", [tuple(r) for r in ref["rows"]["features"]],
                                 [tuple(r) for r in got["rows"]["features"]])
        return problems

    def counted(self, summary: dict) -> dict:
        return {"feature rows": len(summary["rows"]["features"]),
                "videos": len({r[0] for r in summary["rows"]["features"]}), "rejects": len(summary["rejects"]),
                "npy": len(summary["npy"])}


# ---------------------------------------------------------------------------------------------------- pretrain
@dataclass
class PretrainJob(Job):
    """`python trainer/pretrain.py` (configs/pretrain/tiny.yaml at nano size) on the sample shards: 12 steps, a
    checkpoint every 2 (2 kept), every clip's data position logged. Compared: the exported final weights against
    an uninterrupted run's (relative difference within the DDP tests' 1e-5), the final data position, and the clips
    of every step of the final lineage; and the rerun must start from the checkpoint the snapshot registered at the
    kill (never from a torn checkpoint directory)."""

    name: str = "pretrain"
    steps: int = 12
    resumed_from: list[str] = field(default_factory=list)
    _at_kill: dict = field(default_factory=dict)

    def setup(self) -> None:
        sample = self.work / "sample"
        if not (sample / "ingest.yaml").exists():
            _run([PY, "-m", "ingest.sample_data", str(sample), "--small"])
        if not (self.work / "shards" / "manifest.json").exists():
            _run([PY, "-m", "ingest", "--config", str(sample / "ingest.yaml"), "--no-ray",
                  "--set", f"output={self.work / 'shards'}"])

    def argv(self, out: Path) -> list[str]:
        sets = [f"data.path={self.work / 'shards'}", "model.preset=nano", f"run.storage_path={out}", "run.name=run",
                "run.tensorboard=false", "data.max_tasks=1", "data.cpus_per_task=0.5", f"optim.max_steps={self.steps}",
                "optim.warmup_steps=2", "run.checkpoint_every=2", "run.log_every=1", "debug.log_data=true",
                "run.keep_checkpoints=2", "run.max_failures=0"]
        return [PY, "trainer/pretrain.py", "--config", "configs/pretrain/tiny.yaml",
                *[x for kv in sets for x in ("--set", kv)]]

    def env(self) -> dict[str, str]:
        return {"RAY_COLOR_PREFIX": "0", "OMP_NUM_THREADS": "1"}

    def moments(self, n: int, duration_s: float, rng: random.Random) -> list[Moment]:
        """Half at times over the run, half inside checkpoint writes: the n-th checkpoint directory appearing (its
        files still being copied in), its weights, its state file, the snapshot that registers it, the export."""
        events = [("run/checkpoint_*", 1), ("run/checkpoint_*/model/*", 1), ("run/checkpoint_*/train_state.pt", 2),
                  ("run/checkpoint_*", 3), ("run/checkpoint_*/position.json", 2), ("run/model/*", 1)]
        n_events = n // 2
        timed = [Moment(at_s=t) for t in spread_times(n - n_events, duration_s, rng, lo=0.2)]
        return timed + [Moment(pattern=events[i % len(events)][0], count=events[i % len(events)][1],
                               delay_s=rng.uniform(0, 0.02)) for i in range(n_events)]

    def _registered(self, out: Path) -> tuple[int | None, str | None]:
        """(step of the checkpoint the snapshot names, or None; a problem reading it)."""
        from trainer.checkpointing import latest_position

        try:
            return latest_position(str(out / "run")).get("step"), None
        except ValueError as e:
            return None, f"checkpoint_manager_snapshot.json unreadable: {e}"

    def phase(self, out: Path, log: str) -> str:
        run = out / "run"
        if (run / "model").exists():
            return "export"
        step, _ = self._registered(out)
        dirs = [d for d in run.glob("checkpoint_*") if d.is_dir()]
        complete = [d for d in dirs if (d / "position.json").exists() and (d / "model" / "model.safetensors").exists()
                    and (d / "train_state.pt").exists()]
        torn = len(dirs) - len(complete)
        if not run.exists() or "worker 0 of 1" not in log:
            return "start"
        where = "before the 1st checkpoint" if step is None else f"after checkpoint {step}"
        return f"{where}, {torn} torn" if torn else where

    def visible_problems(self, out: Path) -> list[str]:
        step, problem = self._registered(out)
        self._at_kill = {"step": step or 0, "problem": problem}
        return [problem] if problem else []

    def after_rerun(self, out: Path, log: str) -> list[str]:
        """The rerun's worker must start at the registered checkpoint's step (0 without one)."""
        import re

        found = re.findall(r"worker 0 of 1: step (\d+), data position (\d+)", log)
        done = re.search(r"run already complete at step (\d+)", log)
        start = int(found[0][0]) if found else int(done.group(1)) if done else None
        expect = self._at_kill.get("step", 0)
        self.resumed_from.append(f"{expect}->{start}")
        if start != expect:
            return [f"rerun started at step {start}, the last registered checkpoint is step {expect}"]
        if found and int(found[0][1]) != start * 4:
            return [f"rerun's data position {found[0][1]} is not step {start} x 4 clips"]
        return []

    def summary(self, out: Path) -> dict:
        from safetensors.numpy import load_file

        from trainer.checkpointing import latest_position
        from trainer.metrics import read_data_log

        run = out / "run"
        lineage: dict[int, list] = {}
        for row in read_data_log(str(run)):  # a restarted attempt's rows replace the killed one's
            lineage[row["step"]] = row["seqs"]
        return {"weights": load_file(str(run / "model" / "model.safetensors")),
                "position": latest_position(str(run)), "lineage": lineage}

    def compare(self, ref: dict, got: dict) -> list[str]:
        problems = []
        diff = weights_close(got["weights"], ref["weights"])
        if diff > 1e-5:
            problems.append(f"final weights differ: relative {diff:.2e}")
        if got["position"] != ref["position"]:
            problems.append(f"final position {got['position']} != {ref['position']}")
        if got["lineage"] != ref["lineage"]:
            bad = [s for s in ref["lineage"] if got["lineage"].get(s) != ref["lineage"][s]]
            problems.append(f"clips of steps {bad} differ")
        seqs = [q for s in sorted(got["lineage"]) for rank in got["lineage"][s] for q in rank]
        if len(seqs) != len(set(seqs)):
            problems.append(f"{len(seqs) - len(set(seqs))} clips trained twice in the lineage")
        return problems

    def counted(self, summary: dict) -> dict:
        return {"steps": summary["position"].get("step"), "samples_seen": summary["position"].get("samples_seen"),
                "clips in lineage": sum(len(r) for s in summary["lineage"].values() for r in s)}


def _run(argv: list[str], **kw) -> None:
    import subprocess

    subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def weights_close(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """The largest relative difference over tensors (as tests/trainer/test_fast_paths_ray.py's rel_diff)."""
    worst = 0.0
    for k in a:
        x, y = a[k].astype(np.float64), b[k].astype(np.float64)
        worst = max(worst, float(np.abs(x - y).max() / (np.abs(y).max() + 1e-12)))
    return worst
