"""API load and soak: a real server (`python -m api`, uvicorn, on loopback) under closed-loop clients that mix good
uploads with bad ones, at several concurrency levels and then for a long soak; the server's RSS over time.

    python bench/soak.py --json docs/bench/soak.json                       # levels 1 8 32 64 x 30 s, a 10 min soak
    python bench/soak.py --level-seconds 5 --soak-minutes 0.5 --concurrency 1 8   # a quick look

Each client loops: pick a request kind (seeded, weighted), send it, check the answer, repeat. Kinds:
- good: a 1 s video; the answer must be 200 with the same pooled embedding as a single request before the load
  (within 1e-4, relative: micro-batching may change the summation order), or 503 with Retry-After (overload).
- truncated (the first half of the video), not_video (random bytes), oversized (one byte over the upload limit),
  wrong_field (the video under another multipart field name), bad_query (window_stride=0): a 4xx with a message, or
  503 with Retry-After.
- slow_body: the good video sent in 10 chunks 50 ms apart: as good. stalled_body: a body that stops half-way and
  stays open past the server's upload timeout (2 s here): 408.
- disconnect: a raw socket that sends half of a good upload and closes: no answer is expected; the server must
  carry on.

After the soak, --kills times: the server is killed with SIGKILL under the same load and a new one started on the
same port; there, a connection error is an expected answer, and still never a 5xx or a wrong embedding.

Failures counted: any 5xx other than 503, a 503 without Retry-After, a 200 to a bad request, a 4xx to a good one, a
good answer with a different embedding, a connection error on any kind but disconnect. RSS is the server process's
VmRSS (with any child processes), sampled every 2 s; the soak passes its memory check when the RSS at its end is
within 10 % of the RSS after its first minute (the warm-up).

The load generator is this script (threads with httpx clients and raw sockets), not wrk or locust: the mix needs
multipart bodies sent slowly, stalled, cut off mid-upload and checked answer by answer, which wrk does not do
without Lua scripting and locust is not installed here; the clients share the server's CPUs (loopback), as in
bench/api.py.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from tables import table  # noqa: E402

BOUNDARY = "soak-boundary-7f3a"
KINDS = {"good": 60, "truncated": 6, "not_video": 6, "oversized": 4, "wrong_field": 5, "bad_query": 5,
         "slow_body": 6, "stalled_body": 2, "disconnect": 6}
MAX_UPLOAD = 256 * 1024
UPLOAD_TIMEOUT_S = 2.0


def multipart(data: bytes, name: str = "file") -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"v.mp4\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


HEADERS = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def make_video(path: Path) -> bytes:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "1",
                    "-pix_fmt", "yuv420p", str(path)], check=True)
    return path.read_bytes()


def start_server(model_dir: Path, tmp: Path, port: int, queue_size: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDEOMAE_")}
    env.update({"VIDEOMAE_MODEL": str(model_dir), "VIDEOMAE_PORT": str(port), "VIDEOMAE_TORCH_THREADS": "1",
                "VIDEOMAE_QUEUE_SIZE": str(queue_size), "VIDEOMAE_LOG_LEVEL": "warning",
                "VIDEOMAE_TMP_DIR": str(tmp), "VIDEOMAE_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
                "VIDEOMAE_UPLOAD_TIMEOUT_S": str(UPLOAD_TIMEOUT_S)})
    log = (tmp / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp / "server.log").read_text()[-2000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("the server did not become ready")


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` and its children (the API may start ffprobe)."""
    total = 0
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


@dataclass
class Tally:
    """Answers of one phase: per kind, status codes (or 'conn_error', 'no_answer'); latencies of good 200s."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    good_latency_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, outcome: str, latency: float | None = None, failure: str | None = None) -> None:
        with self.lock:
            per = self.counts.setdefault(kind, {})
            per[outcome] = per.get(outcome, 0) + 1
            if latency is not None:
                self.good_latency_s.append(latency)
            if failure is not None and len(self.failures) < 200:
                self.failures.append(failure)
            elif failure is not None:
                self.failures.append("...")

    def total(self) -> int:
        return sum(sum(v.values()) for v in self.counts.values())

    def status_share(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for per in self.counts.values():
            for k, v in per.items():
                out[k] = out.get(k, 0) + v
        return dict(sorted(out.items()))


def close_enough(a: list[float], b: list[float], tol: float = 1e-4) -> bool:
    scale = max(abs(x) for x in b) or 1.0
    return len(a) == len(b) and max(abs(x - y) for x, y in zip(a, b, strict=True)) <= tol * scale


class Client:
    def __init__(self, port: int, video: bytes, reference: list[float], tally: Tally, rng: random.Random,
                 killing: bool = False):
        self.port, self.video, self.reference, self.tally, self.rng = port, video, reference, tally, rng
        self.killing = killing  # the server is being killed: a connection error is an expected answer
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        self.bodies = {"good": multipart(video), "truncated": multipart(video[: len(video) // 2]),
                       "not_video": multipart(random.Random(1).randbytes(20_000)),
                       "oversized": multipart(random.Random(2).randbytes(MAX_UPLOAD + 1)),
                       "wrong_field": multipart(video, name="video")}

    def one(self, kind: str) -> None:
        t = time.perf_counter()
        try:
            if kind == "disconnect":
                self._disconnect()
                self.tally.add(kind, "no_answer")
                return
            if kind == "stalled_body":
                status, retry, body = self._stalled()
            else:
                params = {"window_stride": 0} if kind == "bad_query" else {"include_clips": "false"}
                body_bytes = self.bodies.get(kind, self.bodies["good"])
                content = self._slow(body_bytes) if kind == "slow_body" else body_bytes
                r = self.http.post("/v1/embed", content=content, headers=HEADERS, params=params)
                status, retry, body = r.status_code, r.headers.get("retry-after"), r.content
        except (httpx.TransportError, OSError) as e:
            self.tally.add(kind, "conn_error", failure=None if self.killing else
                           f"{kind}: connection error {type(e).__name__}: {e}")
            if self.killing:
                time.sleep(0.2)  # the server is down: do not spin
            return
        dt = time.perf_counter() - t
        self.tally.add(kind, str(status), dt if kind == "good" and status == 200 else None, self._judge(
            kind, status, retry, body))

    def _judge(self, kind: str, status: int, retry: str | None, body: bytes) -> str | None:
        if status == 503:
            return None if retry else f"{kind}: 503 without Retry-After: {body[:80]!r}"
        if status >= 500:
            return f"{kind}: {status} {body[:200]!r}"
        good = kind in ("good", "slow_body")
        if kind == "stalled_body":
            return None if status == 408 else f"stalled_body: {status}, expected 408"
        if good and status != 200:
            return f"{kind}: {status} {body[:200]!r}"
        if not good and status < 400:
            return f"{kind}: {status} to a bad request"
        if not good and b"detail" not in body and b"error" not in body:
            return f"{kind}: {status} without a message: {body[:200]!r}"
        if good and not close_enough(json.loads(body)["embedding"], self.reference):
            return f"{kind}: a different embedding"
        return None

    def _slow(self, body: bytes):
        step = len(body) // 10 + 1
        for i in range(0, len(body), step):
            yield body[i:i + step]
            time.sleep(0.05)

    def _raw_head(self, length: int) -> bytes:
        return (f"POST /v1/embed HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: {HEADERS['content-type']}"
                f"\r\nContent-Length: {length}\r\n\r\n").encode()

    def _disconnect(self) -> None:
        body = self.bodies["good"]
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(self._raw_head(len(body)) + body[: len(body) // 2])

    def _stalled(self) -> tuple[int, str | None, bytes]:
        body = self.bodies["good"]
        with socket.create_connection(("127.0.0.1", self.port), timeout=UPLOAD_TIMEOUT_S + 30) as s:
            s.sendall(self._raw_head(len(body)) + body[: len(body) // 2])
            data = b""
            while b"\r\n\r\n" not in data or len(data) < 12:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        if not data.startswith(b"HTTP/1."):
            raise OSError(f"no answer to a stalled body: {data[:80]!r}")
        head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
        retry = next((h.split(":", 1)[1].strip() for h in head[1:] if h.lower().startswith("retry-after:")), None)
        return int(head[0].split()[1]), retry, data.split(b"\r\n\r\n", 1)[-1]


def drive(port: int, video: bytes, reference: list[float], concurrency: int, seconds: float, seed: int,
          on_tick=None, killing: bool = False, until: list[float] | None = None) -> tuple[Tally, float]:
    """Closed-loop clients for `seconds` (or until the time `until` comes to hold, set by `on_tick`)."""
    tally = Tally()
    stop = time.monotonic() + seconds
    kinds, weights = list(KINDS), list(KINDS.values())

    def loop(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        client = Client(port, video, reference, tally, rng, killing)
        with client.http:
            while time.monotonic() < stop and not (until and time.monotonic() >= until[0]):
                client.one(rng.choices(kinds, weights)[0])

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        if on_tick is not None:
            on_tick()
    return tally, time.perf_counter() - t0


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def summarize(name: str, concurrency: int, tally: Tally, wall: float) -> dict:
    shares = tally.status_share()
    n = tally.total()
    five = sum(v for k, v in shares.items() if k.isdigit() and int(k) >= 500 and k != "503")
    return {"phase": name, "concurrency": concurrency, "requests": n, "rps": round(n / wall, 2),
            "good_200": len(tally.good_latency_s), "good_p50_ms": round(1e3 * pct(tally.good_latency_s, 0.5), 1),
            "good_p99_ms": round(1e3 * pct(tally.good_latency_s, 0.99), 1),
            "status_share": {k: round(v / max(n, 1), 4) for k, v in shares.items()}, "status_counts": shares,
            "by_kind": tally.counts, "5xx_not_503": five, "failures": len(tally.failures),
            "failure_examples": tally.failures[:20]}


def soak_phase(port: int, video: bytes, reference: list[float], args: argparse.Namespace,
               samples: list[tuple[float, int]], sample, t_start: float) -> dict:
    """The long run at one concurrency; RSS after its first minute (the warm-up), at each minute and at its end."""
    soak_from = time.monotonic() - t_start
    tally, wall = drive(port, video, reference, args.soak_concurrency, args.soak_minutes * 60, args.seed + 1, sample)
    sample()
    soak = summarize("soak", args.soak_concurrency, tally, wall)
    curve = [(t - soak_from, kb) for t, kb in samples if t >= soak_from]
    warm = next((kb for t, kb in curve if t >= min(60.0, wall / 2)), curve[0][1])
    soak["rss_kb_after_warmup"] = warm
    soak["rss_kb_end"] = curve[-1][1]
    soak["rss_growth"] = round(curve[-1][1] / warm - 1, 4)
    soak["rss_flat"] = abs(soak["rss_growth"]) <= 0.10
    soak["rss_minutes"] = [next(kb for t, kb in curve if t >= 60 * m or (t, kb) == curve[-1])
                           for m in range(int(wall // 60) + 1)]
    print(f"[soak] soak c={args.soak_concurrency}: {soak['requests']} requests, {soak['status_counts']}, failures "
          f"{soak['failures']} {soak['failure_examples'][:3]}", flush=True)
    return soak


def kill_restart(proc: subprocess.Popen, tmp: Path, port: int, video: bytes, reference: list[float],
                 args: argparse.Namespace) -> tuple[subprocess.Popen, dict]:
    """`args.kills` times: SIGKILL the server while clients (--soak-concurrency) send the mix, start a new one on the
    same port. Clients may see connection errors (counted, expected) or 503; never a 5xx or a wrong answer."""
    state = {"proc": proc, "kills": 0, "next": time.monotonic() + 10.0, "restart_s": []}

    def tick() -> None:
        if state["kills"] < args.kills and time.monotonic() >= state["next"]:
            state["proc"].kill()
            state["proc"].wait(timeout=30)
            t = time.monotonic()
            state["proc"] = start_server(tmp / "model", tmp, port, args.queue_size)
            state["restart_s"].append(round(time.monotonic() - t, 1))
            state["kills"] += 1
            state["next"] = time.monotonic() + 10.0

    seconds = args.kills * 120.0 + 10.0  # a bound: the phase ends 10 s after the last restart
    stop_at: list[float] = []

    def tick_and_stop() -> None:
        tick()
        if state["kills"] >= args.kills and not stop_at:
            stop_at.append(time.monotonic() + 10.0)

    tally, wall = drive(port, video, reference, args.soak_concurrency, seconds, args.seed + 2, tick_and_stop,
                        killing=True, until=stop_at)
    row = summarize("kill+restart", args.soak_concurrency, tally, wall)
    row["kills"], row["restart_s"] = state["kills"], state["restart_s"]
    print(f"[soak] kill+restart: {state['kills']} SIGKILLs, restarts {state['restart_s']} s, {row['status_counts']}, "
          f"failures {row['failures']} {row['failure_examples'][:3]}", flush=True)
    return state["proc"], row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="nano")
    ap.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 32, 64], help="levels (none: skip)")
    ap.add_argument("--level-seconds", type=float, default=30.0)
    ap.add_argument("--soak-minutes", type=float, default=10.0, help="0: no soak")
    ap.add_argument("--soak-concurrency", type=int, default=8)
    ap.add_argument("--queue-size", type=int, default=16, help="the server's admission queue (VIDEOMAE_QUEUE_SIZE)")
    ap.add_argument("--kills", type=int, default=3, help="SIGKILLs of the server under load, each then restarted")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    import torch

    import videomae

    report: dict = {"machine": {"cpus": os.cpu_count(), "load_average_start": list(os.getloadavg())},
                    "args": {k: str(v) for k, v in vars(args).items()}, "kinds": KINDS, "levels": []}
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as d:
        tmp = Path(d)
        torch.manual_seed(0)
        videomae.create_model(args.preset).save(tmp / "model")
        video = make_video(tmp / "clip.mp4")
        port = 19300 + os.getpid() % 500
        proc = start_server(tmp / "model", tmp, port, args.queue_size)
        samples: list[tuple[float, int]] = []
        t_start = time.monotonic()

        def sample() -> None:
            if not samples or time.monotonic() - t_start - samples[-1][0] >= 2.0:
                samples.append((round(time.monotonic() - t_start, 1), rss_kb(proc.pid)))

        try:
            r = httpx.post(f"http://127.0.0.1:{port}/v1/embed", content=multipart(video), headers=HEADERS,
                           params={"include_clips": "false"}, timeout=120)
            r.raise_for_status()
            reference = r.json()["embedding"]
            sample()
            report["rss_kb_after_start"] = samples[-1][1]
            for conc in args.concurrency:
                tally, wall = drive(port, video, reference, conc, args.level_seconds, args.seed, sample)
                row = summarize("level", conc, tally, wall)
                report["levels"].append(row)
                print(f"[soak] c={conc}: {row['requests']} requests, {row['rps']} req/s, good p50 "
                      f"{row['good_p50_ms']} ms p99 {row['good_p99_ms']} ms, {row['status_counts']}, "
                      f"failures {row['failures']} {row['failure_examples'][:3]}", flush=True)
                if args.json:
                    args.json.write_text(json.dumps(report, indent=2) + "\n")
            if args.soak_minutes > 0:
                report["soak"] = soak_phase(port, video, reference, args, samples, sample, t_start)
            alive = proc.poll() is None and httpx.get(f"http://127.0.0.1:{port}/livez", timeout=10).status_code == 200
            report["server_alive_at_end"] = alive
            if args.kills:
                proc, report["kill_restart"] = kill_restart(proc, tmp, port, video, reference, args)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            report["server_log_tail"] = (tmp / "server.log").read_text(errors="replace")[-3000:]
        report["rss_samples"] = samples
    report["machine"]["load_average_end"] = list(os.getloadavg())
    rows = [*report["levels"], *[report[k] for k in ("soak", "kill_restart") if k in report]]
    print(table([{"phase": r["phase"], "clients": r["concurrency"], "requests": r["requests"], "req/s": r["rps"],
                  "good p50 ms": r["good_p50_ms"], "good p99 ms": r["good_p99_ms"],
                  "200": r["status_share"].get("200", 0), "4xx": round(sum(v for k, v in r["status_share"].items()
                                                                            if k.startswith("4")), 4),
                  "503": r["status_share"].get("503", 0), "other 5xx": r["5xx_not_503"],
                  "failures": r["failures"]} for r in rows]))
    s = report.get("soak", {"rss_flat": True})
    if "rss_kb_end" in s:
        print(f"soak RSS: {s['rss_kb_after_warmup'] / 1024:.1f} MiB after warm-up, {s['rss_kb_end'] / 1024:.1f} MiB at "
              f"the end ({100 * s['rss_growth']:+.1f} %); per minute (MiB): "
              f"{[round(kb / 1024, 1) for kb in s['rss_minutes']]}; server alive: {report['server_alive_at_end']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    ok = all(r["failures"] == 0 for r in rows) and s["rss_flat"] and report["server_alive_at_end"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
