"""CPU time and memory of a process tree, read from /proc (Linux): what the data-path benchmarks count.

- `tree_cpu(pid)`: CPU seconds (user + system) of a process and every descendant, plus what their reaped children
  used (`cutime`/`cstime`), so a worker that exits inside a measured window is still counted. "Clips per CPU-second"
  is clips/s per core, and unlike wall-clock rates it does not move when other jobs share the machine's cores.
- `snapshot(pid)`: per process of the tree: role (the process title: Ray names its workers `ray::<task>`), current
  RSS, peak RSS (`VmHWM`, the kernel's high-water mark, which sampling cannot miss), PSS and USS (`smaps_rollup`;
  Ray's shared-memory object store pages count in a process's RSS once it maps them, not in its USS).
- `Watch`: a thread sampling snapshots every `interval` seconds and keeping each process's peaks (memory) and last
  CPU time (user + system); `peaks()` by role. Its own CPU (`own_cpu_s`: reading every process's smaps is not free,
  tens of ms a sample for GB-sized processes) lands in the watching process: benchmarks subtract it.
  scripts/experiments.py watches its service commands with it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

_TICK = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:  # the process is gone
        return None


def _stat(pid: int) -> list[str] | None:
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from `state` on (the name may hold spaces)


def children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                out.setdefault(int(st[1]), []).append(int(name))
    return out


def descendants(pid: int) -> list[int]:
    kids, out, todo = children_map(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(pid: int, reaped: bool = True) -> float:
    st = _stat(pid)
    if st is None:
        return 0.0
    ticks = int(st[11]) + int(st[12]) + ((int(st[13]) + int(st[14])) if reaped else 0)  # utime stime cutime cstime
    return ticks / _TICK


def tree_cpu(pid: int | None = None) -> float:
    return sum(cpu_seconds(p) for p in descendants(pid or os.getpid()))


def role(pid: int) -> str:
    """What a process is: Ray's process title (`ray::<task or actor>`), else its program or script name."""
    args = (_read(f"/proc/{pid}/cmdline") or "").split("\0")
    if args and args[0].startswith("ray::"):
        return args[0].split()[0]
    names = [os.path.basename(a) for a in args[:3] if a]
    for name in names:
        if name in ("raylet", "gcs_server"):
            return name
        if name.endswith(".py"):
            return name.removesuffix(".py")
    return names[0] if names else "?"


def memory_mb(pid: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[{"VmRSS": "rss", "VmHWM": "hwm"}[key]] = int(value.split()[0]) / 1024
    private = 0
    for line in (_read(f"/proc/{pid}/smaps_rollup") or "").splitlines():
        key, _, value = line.partition(":")
        if key == "Pss":
            out["pss"] = int(value.split()[0]) / 1024
        elif key in ("Private_Clean", "Private_Dirty"):
            private += int(value.split()[0])
    out["uss"] = private / 1024
    return out


def snapshot(pid: int | None = None) -> dict[int, dict]:
    """Per process of the tree: role, memory (MB) and CPU seconds so far (its own, not its reaped children's)."""
    return {p: {"role": role(p), **memory_mb(p), "cpu_s": cpu_seconds(p, reaped=False)}
            for p in descendants(pid or os.getpid())}


@dataclass
class Watch:
    """Peaks of every process in the tree, sampled in a thread; `peaks()` by role (the largest process of each).
    A process's CPU time is its last sample, so up to `interval` s of a process's final moments can be missed."""

    pid: int = field(default_factory=os.getpid)
    interval: float = 0.5
    seen: dict[int, dict] = field(default_factory=dict)
    own_cpu_s: float = 0.0  # CPU seconds the sampling thread has used so far

    def __post_init__(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()
            self.own_cpu_s = time.thread_time()

    def sample(self) -> None:
        for p, m in snapshot(self.pid).items():
            rec = self.seen.setdefault(p, {"roles": set()})
            rec["roles"].add(m.pop("role"))
            for k, v in m.items():
                rec[k] = max(rec.get(k, 0.0), v)

    def peaks(self) -> dict[str, dict[str, float]]:
        """{role: {rss, hwm, pss, uss: MB of the largest process of that role, processes: count}}. A Ray worker
        process runs several tasks in turn and is named by the work it did (its non-idle titles, joined), so the
        decode tasks' processes and the training worker's are told apart; its peak is the process's."""
        out: dict[str, dict[str, float]] = {}
        for rec in self.seen.values():
            ray_titles = [r for r in rec["roles"] if r.startswith("ray::")]  # a Ray worker: what it ran, not how
            titles = sorted((r for r in ray_titles if r != "ray::IDLE") or ray_titles or rec["roles"])
            work = [t for t in titles if "." not in t] or titles  # actor methods (X.run) under the actor (X)
            cur = out.setdefault(" + ".join(work), {"processes": 0})
            cur["processes"] += 1
            for k in ("rss", "hwm", "pss", "uss"):
                cur[k] = round(max(cur.get(k, 0.0), rec.get(k, 0.0)), 1)
        return dict(sorted(out.items()))
