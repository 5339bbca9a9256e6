"""The stage runner the orchestrators share: scripts/demo.py, scripts/experiments.py and infra/jobs/pipeline.py.

A stage is one service command, run the way users run it (`python -m ingest --config ... --set ...`), from the
repository root: its output goes to `<out>/logs/<name>.log` (lines `progress` picks are echoed) or, with no `out`,
passes through (`launch` wraps it, e.g. in `ray job submit ... --`). A stage whose `done_marker` exists is skipped;
a failure stops the run (SystemExit with the log's tail; passed-through: CalledProcessError).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("stages")
M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageConfig(Strict):  # a service stage in an orchestrator's YAML
    config: str  # the service's own YAML under configs/
    set: list[str] = Field(default_factory=list)  # `--set key=value` overrides, as on its command line


class SampleRunConfig(Strict):
    """What the demo and the experiments share: an output folder, the sample videos, their ingest, pre-training."""

    out: str
    sample_preset: str = Field("default", pattern="^(small|default)$")  # ingest/sample_data.py PRESETS
    seed: int = 0
    ingest: StageConfig
    pretrain: StageConfig

    @property
    def out_dir(self) -> Path:  # `out`; a relative one is under the repository root
        return Path(self.out) if Path(self.out).is_absolute() else (ROOT / self.out).resolve()

    def sample_command(self, data: Path) -> list[str]:  # the sample videos (and their ingest config) in `data`
        small = ["--small"] if self.sample_preset == "small" else []
        return [sys.executable, "-m", "ingest.sample_data", str(data), "--seed", str(self.seed), *small]

    def ingest_command(self, data: Path, output: Path, *sets: str) -> list[str]:  # `root` points at `data`
        sets = (f"root={data}", f"output={output}", *sets, *self.ingest.set)
        return [sys.executable, "-m", "ingest", "--config", self.ingest.config, *set_args(list(sets))]


def load_yaml_config(model: type[M], path: str | Path, out: str | None = None, what: str = "config") -> M:
    """An orchestrator's YAML validated into `model` (errors name the key, then exit); `out` replaces its `out`."""
    from videomae.configfile import ConfigError, load_typed

    try:
        cfg = load_typed(model, path)
    except ConfigError as e:
        raise SystemExit(f"invalid {what} {path}:\n{e}") from None
    return cfg.model_copy(update={"out": out}) if out else cfg


def command_line(description: str, folder: str, default: str) -> argparse.ArgumentParser:
    """--config (default configs/<folder>/<default>), --quick (configs/<folder>/quick.yaml), --out, --validate."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / folder / default, help="the YAML to run")
    ap.add_argument("--quick", dest="config", action="store_const", const=ROOT / "configs" / folder / "quick.yaml",
                    help=f"the shortened run: configs/{folder}/quick.yaml")
    ap.add_argument("--out", default=None, help="output directory (default: the config's `out`)")
    ap.add_argument("--validate", action="store_true", help="only validate the config and its stages' configs")
    return ap


def set_args(assignments: list[str]) -> list[str]:
    """`--set a.b=v` flags, as every service's command line takes them."""
    return [arg for a in assignments for arg in ("--set", a)]


@dataclass(frozen=True)
class Stage:
    name: str
    command: list[str]
    done_marker: str | None = None  # a path or URI: the stage is skipped when it exists
    what: str = ""  # one line for people


@dataclass
class Runner:
    out: Path | None  # logs under <out>/logs/; None: output passes through
    total: int | None = None  # stages in the run, for "[i/n]" headers
    progress: Callable[[str], str | None] | None = None  # a log line -> what to echo (None: nothing)
    launch: Callable[[Stage], list[str]] = lambda stage: stage.command
    dry_run: bool = False
    env: dict[str, str] = field(default_factory=lambda: {**os.environ, "PYTHONUNBUFFERED": "1",
                                                         "PYTHONPATH": str(ROOT)})
    timings: dict[str, float] = field(default_factory=dict)
    index: int = 0
    t0: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        if self.out is not None:
            (self.out / "logs").mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path:
        return self.out / "logs" / f"{name}.log"

    def header(self, name: str, what: str = "") -> None:
        self.index += 1
        where = f"{self.index}/{self.total}" if self.total else str(self.index)
        log.info("[%s] %s:%s  (%.0f s elapsed)", where, name, f" {what}" if what else "", time.perf_counter() - self.t0)

    def run(self, stage: Stage, watch: Callable[[int], Any] | None = None) -> dict | None:
        """Run one stage: {"wall_s", "command", "children_cpu_s", **what `watch(pid)` saw}; None when skipped.
        `watch`: a context manager over the process id with a `summary()` (scripts/experiments.py ProcessWatch)."""
        from videomae import storage

        if not self.dry_run and stage.done_marker and storage.exists(stage.done_marker):
            log.info("%s: done already (%s exists), skipped", stage.name, stage.done_marker)
            return None
        cmd = self.launch(stage)
        self.header(stage.name, stage.what)
        log.info("      $ %s", shlex.join(cmd))
        if self.dry_run:
            return None
        start, cpu0 = time.perf_counter(), os.times()
        code, usage = self._execute(stage.name, cmd, watch)
        wall, cpu1 = time.perf_counter() - start, os.times()
        self.timings[stage.name] = wall
        if code != 0:
            tail = "".join(self.log_path(stage.name).read_text(errors="replace").splitlines(keepends=True)[-30:])
            raise SystemExit(f"{stage.name} failed (exit {code}); last lines of {self.log_path(stage.name)}:\n{tail}")
        # Children's CPU as the kernel accounts it once they are reaped (Ray's raylet/workers included when reaped).
        usage["children_cpu_s"] = sum(cpu1[i] - cpu0[i] for i in (2, 3))  # os.times: children's user + system
        log.info("      %s done in %.0f s %s", stage.name, wall,
                 {k: round(v, 1) for k, v in usage.items() if isinstance(v, float)})
        return {"wall_s": wall, "command": shlex.join(cmd), **usage}

    def _execute(self, name: str, cmd: list[str], watch) -> tuple[int, dict]:
        if self.out is None:
            return subprocess.run(cmd, cwd=ROOT, env=self.env, check=True).returncode, {}
        with self.log_path(name).open("w") as fh, contextlib.ExitStack() as stack:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, errors="replace")
            w = stack.enter_context(watch(proc.pid)) if watch else None
            code = self._follow(name, proc, fh)
        return code, w.summary() if w else {}

    def _follow(self, name: str, proc: subprocess.Popen, fh) -> int:
        """Copy the output to the log; echo progress lines, and a heartbeat when none came for 30 s."""
        start = last_shown = time.perf_counter()
        for line in proc.stdout:
            fh.write(line)
            if self.progress is None:
                continue
            now, shown = time.perf_counter(), self.progress(line)
            if shown:
                log.info("      %s", shown)
                last_shown = now
            elif now - last_shown > 30:
                log.info("      ... %s running for %.0f s", name, now - start)
                last_shown = now
        return proc.wait()
