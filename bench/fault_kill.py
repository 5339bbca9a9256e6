"""Killing a job the way a machine dies: SIGKILL to every process of the job at once, at a chosen moment.

A job runs in its own session (`start_new_session`), so the processes it starts (Ray's GCS, raylet, workers, the
API's decode threads' process) are found by session id, and by parent, and all get SIGKILL together: nothing gets
to clean up, flush or finish a rename. What is on disk at that moment is what a rerun (and any reader) finds.

Three kinds of moment: a time after the start; a time after a line of the job's log first appears (the harness
spreads these over the uninterrupted run's working time after that line, one per stratum, seeded: on a busy machine
the start-up alone, imports and all, varies by tens of seconds); and the first appearance of a file matching a
pattern (a part being written, a table, the manifest's temporary name), which reaches the short windows a uniform
time almost never hits; an event kill waits a further seeded random delay of a few milliseconds.
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Moment:
    """When to kill: `at_s` seconds after the start, or `delay_s` after the text `log_text` first appears in the job's
    log, or when a file matching `pattern` (relative to `under`, a glob) first appears, then `delay_s` more."""

    at_s: float | None = None
    log_text: str | None = None
    pattern: str | None = None
    delay_s: float = 0.0
    count: int = 1  # kill once this many paths match (the 3rd part, the 2nd checkpoint)

    def describe(self) -> str:
        if self.log_text is not None:
            return f"log '{self.log_text}' +{self.delay_s:.2f}s"
        if self.pattern is None:
            return f"t={self.at_s:.2f}s"
        return f"on {self.pattern}{f' #{self.count}' if self.count > 1 else ''} +{self.delay_s * 1000:.0f}ms"


@dataclass
class Outcome:
    """What happened to one attempt: killed (when, how long after the start) or finished (exit code)."""

    killed: bool
    elapsed_s: float
    returncode: int | None
    log: str
    processes_killed: int = 0
    notes: list[str] = field(default_factory=list)
    anchor_s: float | None = None  # when the `anchor` text first appeared in the log


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, session id) of a live process, from /proc (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, pgrp, session, ...
    return (int(fields[1]), int(fields[3])) if fields[0] not in ("Z", "X") else None


def job_processes(proc: subprocess.Popen) -> list[int]:
    """Every live process of the job: its session's members and the job's descendants (a process that started a
    session of its own is still a descendant)."""
    stats = {int(d): st for d in os.listdir("/proc") if d.isdigit() and (st := _stat(int(d))) is not None}
    found = {pid for pid, (_, sid) in stats.items() if sid == proc.pid}
    if proc.pid in stats:
        found.add(proc.pid)
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in stats.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    found.discard(os.getpid())
    return sorted(found)


def kill_job(proc: subprocess.Popen) -> int:
    """SIGKILL every process of the job, then wait until they are gone; returns how many were killed. Repeated
    until none is found: a process forked while the first signals went out is caught by the next sweep."""
    killed = 0
    for _ in range(50):
        pids = job_processes(proc)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        proc.poll()  # reap the job's own process (the others are reaped by init)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_stat(pid) is not None for pid in pids):
            time.sleep(0.01)
    proc.wait(timeout=30)
    return killed


def _appeared(under: Path, pattern: str, count: int) -> bool:
    return len(glob.glob(str(under / pattern))) >= count


def run_job(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None,
            moment: Moment | None = None, under: Path | None = None, timeout_s: float = 900,
            on_kill: Callable[[], None] | None = None, anchor: str | None = None) -> Outcome:
    """Run `argv` (in its own session, output to `log`) to the end, or SIGKILL it at `moment`; with `anchor`, note
    when that text first appears in the log."""
    full_env = {**os.environ, **(env or {})}
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = start + timeout_s
    fired_at: float | None = None
    watch = moment.log_text if moment is not None and moment.log_text is not None else anchor
    seen_at: float | None = None
    last_look = 0.0
    while proc.poll() is None:
        now = time.monotonic()
        if watch is not None and seen_at is None and now - last_look >= 0.02:
            last_look = now
            if watch in log.read_text(errors="replace"):
                seen_at = now
        if now > deadline:
            kill_job(proc)
            raise TimeoutError(f"{argv} ran longer than {timeout_s} s; log {log}")
        if moment is not None and fired_at is None:
            if moment.log_text is not None:
                if seen_at is not None:
                    fired_at = seen_at + moment.delay_s
            elif moment.pattern is None and now - start >= moment.at_s:
                fired_at = now
            elif moment.pattern is not None and _appeared(under, moment.pattern, moment.count):
                fired_at = now + moment.delay_s
        if fired_at is not None and now >= fired_at:
            n = kill_job(proc)
            if on_kill is not None:
                on_kill()
            return Outcome(True, now - start, proc.returncode, log.read_text(errors="replace"), n,
                           anchor_s=None if seen_at is None else seen_at - start)
        time.sleep(0.001 if moment is not None and moment.pattern is not None else 0.02)
    # Finished before the moment came (or no moment): the job's own processes may linger (Ray daemons).
    rc = proc.returncode
    leftover = kill_job(proc)
    notes = [f"{leftover} leftover processes killed after exit"] if leftover else []
    text = log.read_text(errors="replace")
    if watch is not None and seen_at is None and watch in text:
        seen_at = time.monotonic()
    return Outcome(False, time.monotonic() - start, rc, text, leftover, notes,
                   anchor_s=None if seen_at is None else seen_at - start)
