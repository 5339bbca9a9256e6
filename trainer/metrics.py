"""Training metrics: step timing and throughput, and where they go (rank 0 only): the console with progress and an
ETA, `<run_dir>/metrics.jsonl` (one JSON object per logged step, every attempt of the run: what tests and notebooks
read back) and TensorBoard (`<run_dir>/tensorboard`). With `debug.log_data`, `data_log.jsonl` beside it records the
data position (`seq`) of every clip each rank trained on, per report window.

Every file lands in the run's own directory, through `videomae.storage`, whatever `run.storage_path` is. A local
directory (or `file://`) is written in place. An object store cannot append, so for a URI run the sink writes to a
private local buffer, started from what the run directory already holds (a resumed run goes on appending), and copies
it to the run directory at every checkpoint and at the end (`flush`): what a crash loses is what its restart logs again.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

from videomae import storage

log = logging.getLogger("trainer")
METRICS = "metrics.jsonl"
DATA_LOG = "data_log.jsonl"
TENSORBOARD = "tensorboard"


class StepTimer:
    """Wall time per step and throughput over the last logging window."""

    def __init__(self):
        self._start = time.perf_counter()
        self._steps = 0
        self._clips = 0
        self._tokens = 0

    def tick(self, clips: int, tokens: int) -> None:
        self._steps += 1
        self._clips += clips
        self._tokens += tokens

    def window(self) -> dict[str, float]:
        """Averages since the last call: step_time (s), clips_per_s, tokens_per_s (on this worker)."""
        now = time.perf_counter()
        dt = max(now - self._start, 1e-9)
        out = {"step_time": dt / max(self._steps, 1), "clips_per_s": self._clips / dt,
               "tokens_per_s": self._tokens / dt}
        self._start, self._steps, self._clips, self._tokens = now, 0, 0, 0
        return out


class MetricsSink:
    """Console + TensorBoard + metrics.jsonl; create it on rank 0 only (other ranks get None and skip logging)."""

    def __init__(self, run_dir: str, total_steps: int, tensorboard: bool = True, options: storage.Options = None):
        self.total_steps = total_steps
        self._t0 = time.perf_counter()
        self._first_step: int | None = None
        self.run_dir, self.options = run_dir, options
        self._buffer = None if storage.is_local(run_dir) else tempfile.TemporaryDirectory(prefix="videomae-metrics-")
        root = storage.local_path(run_dir) if self._buffer is None else Path(self._buffer.name)
        root.mkdir(parents=True, exist_ok=True)
        if self._buffer is not None:  # a resumed run appends to what its earlier attempts left in the run directory
            for name in (METRICS, DATA_LOG):
                text = storage.read_text_or_none(storage.join(run_dir, name), options)
                if text:
                    (root / name).write_text(text)
        self.root = root
        self.jsonl = root / METRICS
        self.data_jsonl = root / DATA_LOG
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(root / TENSORBOARD))

    def log(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
        if self._first_step is None:
            self._first_step, self._t0 = step, time.perf_counter()
        with self.jsonl.open("a") as fh:
            fh.write(json.dumps({"step": step, "split": prefix, **metrics}) + "\n")
        if self.writer is not None:
            for k, v in metrics.items():
                if isinstance(v, int | float):
                    self.writer.add_scalar(f"{prefix}/{k}", v, step)
            self.writer.flush()
        done = step - self._first_step
        elapsed = time.perf_counter() - self._t0
        eta = elapsed / done * (self.total_steps - step) if done > 0 else float("nan")
        shown = "  ".join(f"{k} {_fmt(v)}" for k, v in metrics.items())
        log.info("[%s %d/%d %.0f%% eta %s] %s", prefix, step, self.total_steps, 100 * step / self.total_steps,
                 _duration(eta), shown)

    def log_data(self, step: int, attempt_start_step: int, seqs_per_rank: list[list[int]]) -> None:
        """The clips (their `seq`) each rank trained on since the last report, ending at `step`."""
        with self.data_jsonl.open("a") as fh:
            fh.write(json.dumps({"step": step, "attempt_start_step": attempt_start_step, "seqs": seqs_per_rank}) + "\n")

    def flush(self) -> None:
        """Bring the run directory up to date: a no-op for a local one (written in place); for a URI, copy the buffer
        there (metrics.jsonl, the data log and the TensorBoard event files, each file whole)."""
        if self.writer is not None:
            self.writer.flush()
        if self._buffer is None:
            return
        for f in sorted(self.root.rglob("*")):
            if f.is_file():
                storage.write_bytes(storage.join(self.run_dir, f.relative_to(self.root).as_posix()), f.read_bytes(),
                                    self.options)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.flush()
        if self._buffer is not None:
            self._buffer.cleanup()


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _duration(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def _read_rows(run_dir: str, name: str, options: storage.Options) -> list[dict]:
    text = storage.read_text_or_none(storage.join(run_dir, name), options) or ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_metrics(run_dir: str, split: str = "train", options: storage.Options = None) -> list[dict]:
    """Every logged row of a run (all attempts), in order; `run_dir` a path or URI."""
    return [r for r in _read_rows(run_dir, METRICS, options) if r.get("split") == split]


def read_data_log(run_dir: str, options: storage.Options = None) -> list[dict]:
    """Every row of a run's data log (all attempts), in order: {"step", "attempt_start_step", "seqs": per rank}."""
    return _read_rows(run_dir, DATA_LOG, options)
