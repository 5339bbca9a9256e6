"""Training metrics: step timing and throughput, and where they go (rank 0 only): the console with progress and an
ETA, TensorBoard (`<run_dir>/tensorboard`, or a local folder for remote storage), and `<run_dir>/metrics.jsonl`
(one JSON object per logged step: what tests and notebooks read back). With `debug.log_data`, `data_log.jsonl` beside
it records the data position (`seq`) of every clip each rank trained on, per report window.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from videomae import storage

log = logging.getLogger("trainer")
DATA_LOG = "data_log.jsonl"


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

    def __init__(self, run_dir: str, total_steps: int, tensorboard: bool = True):
        self.total_steps = total_steps
        self._t0 = time.perf_counter()
        self._first_step: int | None = None
        local = storage.is_local(run_dir)
        root = storage.local_path(run_dir) if local else Path(os.path.expanduser("~/videomae_runs_local"))
        root.mkdir(parents=True, exist_ok=True)
        self.jsonl = root / "metrics.jsonl"
        self.data_jsonl = root / DATA_LOG
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(root / "tensorboard"))

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

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


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


def read_metrics(run_dir: str, split: str = "train") -> list[dict]:
    """Every logged row of a run (all attempts), in order."""
    path = storage.local_path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("split") == split]


def read_data_log(run_dir: str) -> list[dict]:
    """Every row of a run's data log (all attempts), in order: {"step", "attempt_start_step", "seqs": per rank}."""
    path = storage.local_path(run_dir) / DATA_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
