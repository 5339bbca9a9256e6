"""The live half of infra/docker/stack-test.sh: `docker compose up` the stack, follow the pipeline, kill the container
that runs the training worker during pre-training, then check the running stack from outside (only the ports compose
published on 127.0.0.1) and from the engine's view (process users, mounts).

    python infra/docker/stack_checks.py --video clip.mp4 --summary summary.json

Run by stack-test.sh with the environment it exports (COMPOSE_PROJECT_NAME, COMPOSE_FILE, the published ports,
RAY_AUTH_TOKEN, VIDEOMAE_API_KEYS); the standard library only, so any Python 3.10+ on the host runs it. Every wait is a
loop bounded in attempts and in time; a failed check raises `CheckFailed` with what was expected and what was seen.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

STAGES = ("sample", "ingest", "pretrain", "postpretrain")
RUN_DIR = "/shared/runs/pretrain"  # infra/jobs/pipeline.py: run.storage_path=/shared/runs, run.name=pretrain
T0 = time.monotonic()


class CheckFailed(AssertionError):
    pass


def say(msg: str) -> None:
    print(f"[checks {time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def check(ok: bool, msg: str) -> None:
    if not ok:
        raise CheckFailed(msg)


# ---------------------------------------------------------------------------------------------- processes, HTTP
def run(args: list[str], timeout: float = 60, ok: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if ok and res.returncode != 0:
        raise CheckFailed(f"{' '.join(args)} -> exit {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return res


def compose(*args: str, timeout: float = 60, ok: bool = True) -> subprocess.CompletedProcess:
    return run(["docker", "compose", *args], timeout=timeout, ok=ok)


def poll(what: str, probe, timeout_s: float, interval_s: float = 2.0):
    """Call `probe()` until it returns something truthy: at most timeout_s/interval_s + 1 attempts, and never past
    timeout_s (each probe bounds its own time too)."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / interval_s) + 1):
        value = probe()
        if value:
            return value
        if time.monotonic() + interval_s > deadline:
            break
        time.sleep(interval_s)
    raise CheckFailed(f"timed out after {timeout_s:.0f}s waiting for {what}")


@dataclass
class Reply:
    status: int | None  # None: no answer (connection refused, reset, timeout)
    headers: dict = field(default_factory=dict)  # names lower-cased
    body: bytes = b""

    def json(self):
        return json.loads(self.body)


def http(port: int, path: str, method: str = "GET", headers: dict | None = None, data: bytes | None = None,
         timeout: float = 10) -> Reply:
    """One request to a port published on this machine's loopback (the only addresses these tests talk to)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return Reply(None)


def multipart(path: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


# ---------------------------------------------------------------------------------------------- the stack
@dataclass
class Stack:
    dashboard: int
    api: int
    tensorboard: int
    token: str
    api_key: str

    @classmethod
    def from_env(cls) -> Stack:
        env = os.environ
        return cls(int(env["RAY_DASHBOARD_PORT"]), int(env["VIDEOMAE_API_PORT"]), int(env["TENSORBOARD_PORT"]),
                   env["RAY_AUTH_TOKEN"], env["VIDEOMAE_API_KEYS"].split(",")[0])

    def ray(self, path: str, token: str | None = "valid", timeout: float = 10) -> Reply:
        headers = {} if token is None else {"Authorization": f"Bearer {self.token if token == 'valid' else token}"}
        return http(self.dashboard, path, headers=headers, timeout=timeout)

    def jobs(self) -> dict[str, dict]:
        """Pipeline jobs by stage (the latest submission of each), from the dashboard's job API."""
        r = self.ray("/api/jobs/")
        if r.status != 200:
            return {}
        out = {}
        for job in sorted(r.json(), key=lambda j: j.get("start_time") or 0):
            m = re.fullmatch(r"videomae-(\w+)-\d+", job.get("submission_id") or "")
            if m and m.group(1) in STAGES:
                out[m.group(1)] = job
        return out


def containers(service: str | None = None, all_states: bool = False) -> list[dict]:
    """The project's containers (optionally one service's), each as `docker inspect` reports it."""
    args = ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={os.environ['COMPOSE_PROJECT_NAME']}"]
    if service:
        args += ["--filter", f"label=com.docker.compose.service={service}"]
    if all_states:
        args.append("-a")
    ids = run(args).stdout.split()
    return json.loads(run(["docker", "inspect", *ids]).stdout) if ids else []


def service_of(c: dict) -> str:
    return c["Config"]["Labels"]["com.docker.compose.service"]


def health(c: dict) -> str:
    return (c["State"].get("Health") or {}).get("Status", "none")


def head_id() -> str:
    heads = containers("ray-head")
    check(len(heads) == 1, f"expected one running ray-head, found {len(heads)}")
    return heads[0]["Id"]


def read_shared(path: str) -> str | None:
    """A file of the shared volume, read through the head container (no host path, no network)."""
    res = run(["docker", "exec", head_id(), "cat", path], timeout=20, ok=False)
    return res.stdout if res.returncode == 0 else None


def metrics_rows() -> list[dict]:
    text = read_shared(f"{RUN_DIR}/metrics.jsonl") or ""
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [r for r in rows if r.get("split") == "train"]


def registered_checkpoint() -> dict:
    """position.json of the checkpoint Ray Train would restore now (its checkpoint-manager snapshot's latest)."""
    snap = read_shared(f"{RUN_DIR}/checkpoint_manager_snapshot.json")
    if not snap:
        return {}
    latest = json.loads(snap).get("latest_checkpoint_result") or {}
    name = latest.get("checkpoint_dir_name") or Path((latest.get("checkpoint") or {}).get("path", "")).name
    text = read_shared(f"{RUN_DIR}/{name}/position.json") if name else None
    return json.loads(text) if text else {}


# ---------------------------------------------------------------------------------------------- phases
def start(summary: dict, log: Path) -> subprocess.Popen:
    say("docker compose up -d --scale ray-worker=2 (head, 2 CPU workers, jobs, api after jobs, tensorboard)")
    summary["t_up"] = time.monotonic()
    return subprocess.Popen(["docker", "compose", "up", "-d", "--scale", "ray-worker=2"], stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def head_healthy(stack: Stack, summary: dict) -> None:
    def probe():
        heads = containers("ray-head")
        return heads and health(heads[0]) == "healthy" and stack.ray("/api/gcs_healthz", token=None).status == 200

    poll("the ray head to be healthy (docker health check and /api/gcs_healthz on the published port)", probe, 300)
    summary["head_healthy_s"] = round(time.monotonic() - summary["t_up"], 1)
    say(f"ray head healthy {summary['head_healthy_s']} s after up")


def dashboard_auth(stack: Stack) -> None:
    none, wrong, good = stack.ray("/api/jobs/", token=None), stack.ray("/api/jobs/", token="0" * 64), stack.ray(
        "/api/jobs/")
    check(none.status == 401, f"job list without a token: expected 401, got {none.status} {none.body[:200]!r}")
    check(wrong.status == 403, f"job list with a wrong token: expected 403, got {wrong.status}")
    check(good.status == 200 and isinstance(good.json(), list), f"job list with the token: got {good.status}")
    say(f"dashboard job API: no token -> 401, wrong token -> 403, token -> 200 ({len(good.json())} jobs)")


def follow_until_pretrain_runs(stack: Stack, seen: dict) -> None:
    def probe():
        for stage, job in stack.jobs().items():
            if seen.get(stage) != job["status"]:
                seen[stage] = job["status"]
                say(f"job {job['submission_id']}: {job['status']}")
            check(job["status"] not in ("FAILED", "STOPPED"), f"{stage} job {job['status']}: {job.get('message')}")
        return seen.get("pretrain") == "RUNNING"

    poll("the pipeline to reach pre-training", probe, 900, 2)


def inject_fault(stack: Stack, checkpoint_every: int, summary: dict) -> None:
    """Wait until a checkpoint is registered and training went past it, find the container whose Ray node runs the
    RayTrainWorker, and kill it (SIGKILL: a lost node, no shutdown)."""
    state = {}

    def probe():
        job = stack.jobs().get("pretrain", {})
        check(job.get("status") == "RUNNING", f"pre-training left RUNNING ({job.get('status')}) before the fault")
        ckpt, rows = registered_checkpoint(), metrics_rows()
        step = rows[-1]["step"] if rows else 0
        state.update(ckpt=ckpt, step=step)
        return ckpt.get("step", 0) >= checkpoint_every and step > ckpt["step"]

    poll("a registered checkpoint and a step past it", probe, 600, 1)
    actors = stack.ray("/api/v0/actors?filter_keys=class_name&filter_predicates=%3D&filter_values=RayTrainWorker"
                       "&filter_keys=state&filter_predicates=%3D&filter_values=ALIVE&limit=100").json()
    workers = actors["data"]["result"]["result"]
    check(len(workers) == 1, f"expected one alive RayTrainWorker, found {len(workers)}")
    nodes = stack.ray("/api/v0/nodes?limit=100").json()["data"]["result"]["result"]
    ip = next(n["node_ip"] for n in nodes if n["node_id"] == workers[0]["node_id"])
    host = next(c for c in containers() if ip in [n["IPAddress"] for n in c["NetworkSettings"]["Networks"].values()])
    check(service_of(host) == "ray-worker", f"the training worker runs in {service_of(host)}, not a ray-worker")
    summary["processes_during_training"] = process_users()
    run(["docker", "kill", host["Id"]])
    summary["fault"] = {"container": host["Name"].lstrip("/"), "node_ip": ip, "killed_after_step": state["step"],
                        "checkpoint_at_kill": state["ckpt"]}
    say(f"FAULT: killed {host['Name'].lstrip('/')} (Ray node {ip}, runs the RayTrainWorker) after step {state['step']}"
        f"; last registered checkpoint: step {state['ckpt']['step']}, data position {state['ckpt']['samples_seen']}")


def pipeline_finishes(stack: Stack, up: subprocess.Popen, seen: dict, summary: dict) -> None:
    def probe():
        jobs = stack.jobs()
        for stage, job in jobs.items():
            if seen.get(stage) != job["status"]:
                seen[stage] = job["status"]
                say(f"job {job['submission_id']}: {job['status']}")
            check(job["status"] not in ("FAILED", "STOPPED"), f"{stage} job {job['status']}: {job.get('message')}")
        return up.poll() is not None

    poll("`docker compose up` to return (it waits for the jobs service to exit 0, then starts the api)", probe, 1200, 3)
    check(up.returncode == 0, f"docker compose up exited {up.returncode} (see up.log)")
    jobs = [c for c in containers("jobs", all_states=True)]
    check(len(jobs) == 1 and jobs[0]["State"]["ExitCode"] == 0, "the jobs service did not exit 0")
    done = stack.jobs()
    check(all(done.get(s, {}).get("status") == "SUCCEEDED" for s in STAGES),
          f"not every stage SUCCEEDED: { {s: done.get(s, {}).get('status') for s in STAGES} }")
    summary["pipeline_s"] = round(time.monotonic() - summary["t_up"], 1)
    summary["jobs"] = {s: {"submission_id": done[s]["submission_id"],
                           "duration_s": round((done[s]["end_time"] - done[s]["start_time"]) / 1000, 1)}
                       for s in STAGES}
    say(f"pipeline done {summary['pipeline_s']} s after up: "
        + ", ".join(f"{s} {v['duration_s']} s" for s, v in summary["jobs"].items()))


def api_ready(stack: Stack, summary: dict) -> None:
    def probe():
        api = containers("api", all_states=True)
        if api and (api[0]["RestartCount"] or api[0]["State"]["Status"] in ("restarting", "exited")):
            logs = run(["docker", "logs", "--tail", "30", api[0]["Id"]], ok=False)
            raise CheckFailed(f"the api container crashed ({api[0]['State']['Status']}):\n{logs.stdout}{logs.stderr}")
        return api and health(api[0]) == "healthy" and http(stack.api, "/readyz").status == 200

    poll("the api to be healthy (/readyz on the published port)", probe, 300)
    summary["api_ready_s"] = round(time.monotonic() - summary["t_up"], 1)
    say(f"api ready {summary['api_ready_s']} s after up")


def api_calls(stack: Stack, video: Path, summary: dict) -> None:
    body, ctype = multipart(video)
    key = {"Authorization": f"Bearer {stack.api_key}", "Content-Type": ctype}
    r = http(stack.api, "/v1/embed", "POST", key, body, timeout=120)
    check(r.status == 200, f"/v1/embed with the key: {r.status} {r.body[:300]!r}")
    emb = r.json()
    check(len(emb["embedding"]) == emb["dim"] > 0 and all(math.isfinite(x) for x in emb["embedding"]),
          "embedding is not dim finite numbers")
    check(len(emb["clips"]) >= 1, "no clips in the embed answer")
    r = http(stack.api, "/v1/reconstruct", "POST", key, body, timeout=120)
    check(r.status == 200 and r.body[:8] == b"\x89PNG\r\n\x1a\n", f"/v1/reconstruct: {r.status} {r.body[:200]!r}")
    png = len(r.body)
    anon = http(stack.api, "/v1/embed", "POST", {"Content-Type": ctype}, body, timeout=60)
    check(anon.status == 401, f"/v1/embed without a key: expected 401, got {anon.status}")
    check(anon.headers.get("www-authenticate") == "Bearer", "401 without WWW-Authenticate: Bearer")
    bad = http(stack.api, "/v1/reconstruct", "POST", {"Authorization": "Bearer " + "x" * 32, "Content-Type": ctype},
               body, timeout=60)
    check(bad.status == 401, f"/v1/reconstruct with a wrong key: expected 401, got {bad.status}")
    summary["api"] = {"video": video.name, "embed_dim": emb["dim"], "clips": len(emb["clips"]), "png_bytes": png}
    say(f"api on {video.name}: embed 200 (dim {emb['dim']}, {len(emb['clips'])} clips), reconstruct 200 (PNG {png} "
        "bytes); no key -> 401, wrong key -> 401")


def process_users() -> dict[str, list[int]]:
    """uid of every process of every running container of the project, as the engine sees them (`docker top`)."""
    out = {}
    for c in containers():
        lines = run(["docker", "top", c["Id"], "-eo", "uid,pid,args"]).stdout.splitlines()[1:]
        out[c["Name"].lstrip("/")] = sorted({int(line.split()[0]) for line in lines if line.strip()})
    return out


def non_root(summary: dict) -> None:
    now = process_users()
    during = summary.get("processes_during_training", {})
    for name, uids in {**during, **now}.items():
        check(uids and 0 not in uids, f"{name}: processes run as uid {uids}")
    summary["processes"] = now
    say("every process non-root: " + ", ".join(f"{n} uid {u}" for n, u in sorted({**during, **now}.items())))


def api_volume_read_only() -> None:
    api = containers("api")[0]
    mount = next(m for m in api["Mounts"] if m["Destination"] == "/shared")
    check(mount["Type"] == "volume" and mount["RW"] is False, f"api /shared mount: {mount}")
    probe = run(["docker", "exec", api["Id"], "touch", "/shared/.write-probe"], ok=False)
    check(probe.returncode != 0 and "Read-only file system" in probe.stderr, f"api could write /shared: {probe}")
    say("api's /shared: volume mounted read-only (RW=false; touch -> Read-only file system)")


def tensorboard(stack: Stack, summary: dict) -> None:
    root = http(stack.tensorboard, "/")
    check(root.status == 200, f"TensorBoard /: {root.status}")

    def probe():
        r = http(stack.tensorboard, "/data/runs")
        runs = r.json() if r.status == 200 else []
        return [x for x in runs if x.startswith("pretrain")] and runs

    runs = poll("TensorBoard to list the pre-training run", probe, 120, 3)
    summary["tensorboard_runs"] = runs
    say(f"TensorBoard answers (/ -> 200) and lists runs {runs}")


def dashboard_job_list(stack: Stack, summary: dict) -> None:
    good, none = stack.ray("/api/jobs/"), stack.ray("/api/jobs/", token=None)
    check(good.status == 200, f"job list with the token: {good.status}")
    check(none.status == 401, f"job list without the token: {none.status}")
    ids = sorted(j["submission_id"] for j in good.json())
    summary["dashboard_jobs"] = ids
    say(f"dashboard job list with the token: {len(ids)} jobs {ids}; without: 401")


def fault_evidence(stack: Stack, max_steps: int, summary: dict) -> None:
    """The restarted attempt resumed from the checkpoint: its first step and data position continue the killed
    attempt's, and it ran to the end. Numbers from metrics.jsonl (every logged step of every attempt, with the step
    and data position the attempt started from) and from the job's log (the worker's `[train N/M ...]` lines)."""
    fault, rows = summary["fault"], metrics_rows()
    attempts: list[list[dict]] = []
    for row in rows:
        if not attempts or row["attempt_start_step"] != attempts[-1][0]["attempt_start_step"]:
            attempts.append([])
        attempts[-1].append(row)
    check(len(attempts) >= 2, f"one attempt only: no restart seen in metrics.jsonl ({len(rows)} rows)")
    first, resumed = attempts[0], attempts[-1]
    start = resumed[0]["attempt_start_step"]
    batch = first[0]["samples_seen"] // first[0]["step"]
    ckpt = fault["checkpoint_at_kill"]
    check(first[0]["attempt_start_step"] == 0, "the first attempt did not start at step 0")
    check(ckpt["step"] <= start <= fault["killed_after_step"],
          f"resumed from step {start}, expected the checkpoint registered at the kill ({ckpt['step']}) or later")
    check(resumed[0]["attempt_first_seq"] == start * batch,
          f"resumed data stream starts at {resumed[0]['attempt_first_seq']}, expected {start * batch}")
    check(resumed[0]["step"] > start and all(r["samples_seen"] == r["step"] * batch for r in resumed),
          "steps/data positions of the resumed attempt do not continue from the checkpoint")
    check(resumed[-1]["step"] == max_steps, f"resumed attempt ended at step {resumed[-1]['step']}, not {max_steps}")
    # The resumed attempt replays the steps the killed one logged after the checkpoint: same data (seeded by data
    # position), same masks, same weights/optimizer/RNG from the checkpoint, so the same losses.
    killed = {r["step"]: r["loss"] for r in first if r["step"] > start}
    replayed = [(r["step"], killed[r["step"]], r["loss"]) for r in resumed if r["step"] in killed]
    check(all(abs(a - b) <= 1e-3 * max(1.0, abs(a)) for _, a, b in replayed),
          f"replayed steps differ in loss (step, killed attempt, resumed attempt): {replayed}")
    # The same story in the job's log (what `ray job logs` / the dashboard show): Ray Train's failure policy retried,
    # and the worker's step lines, from the killed node and then from another one, carry the step and data position.
    logs = stack.ray(f"/api/jobs/{summary['jobs']['pretrain']['submission_id']}/logs", timeout=30).json()["logs"]
    check("[FailurePolicy] RETRY" in logs, "the pre-training job log shows no retry by Ray Train's failure policy")
    logged = [(ip, int(step), int(seen), int(a), int(f)) for ip, step, seen, a, f in re.findall(
        r"RayTrainWorker pid=\d+, ip=([\d.]+)\)\S* \[train \d+/\d+.*? step (\d+)  samples_seen (\d+) .*?"
        r"attempt_start_step (\d+)  attempt_first_seq (\d+)", logs)]
    before = [x for x in logged if x[3] == 0]
    after = [x for x in logged if x[3] == start]
    check(before and before[-1][0] == fault["node_ip"], f"no step lines from the killed node {fault['node_ip']}")
    check(after and after[0][0] != fault["node_ip"] and after[0][4] == start * batch and after[-1][1] == max_steps,
          f"the log's resumed step lines do not continue from step {start} / position {start * batch}: {after[:2]}")
    summary["fault"].update(
        global_batch=batch, attempts=len(attempts),
        log_lines={"killed_node": before[-1][0], "last_before": before[-1][1:3], "resumed_node": after[0][0],
                   "first_after": after[0][1:]},
        killed_attempt={"first_step": first[0]["step"], "last_logged_step": first[-1]["step"],
                        "last_samples_seen": first[-1]["samples_seen"]},
        replayed_losses=replayed,
        resumed_attempt={"attempt_start_step": start, "attempt_first_seq": resumed[0]["attempt_first_seq"],
                         "first_step": resumed[0]["step"], "first_samples_seen": resumed[0]["samples_seen"],
                         "last_step": resumed[-1]["step"], "last_samples_seen": resumed[-1]["samples_seen"]})
    say(f"fault recovered: attempt 1 logged steps {first[0]['step']}..{first[-1]['step']} (data position "
        f"{first[-1]['samples_seen']}); attempt {len(attempts)} restarted from the step-{start} checkpoint with the "
        f"data stream at {resumed[0]['attempt_first_seq']}, logged steps {resumed[0]['step']}..{resumed[-1]['step']} "
        f"(data position {resumed[0]['samples_seen']}..{resumed[-1]['samples_seen']}) on node {after[0][0]}; "
        f"replayed steps' losses (step, killed, resumed): {[(s, round(a, 4), round(b, 4)) for s, a, b in replayed]}")


def rerun_skips(stack: Stack, summary: dict) -> None:
    before = len(stack.ray("/api/jobs/").json())
    t = time.monotonic()
    res = compose("run", "--rm", "jobs", timeout=300, ok=False)
    out = res.stdout + res.stderr
    check(res.returncode == 0, f"docker compose run --rm jobs exited {res.returncode}:\n{out[-3000:]}")
    skipped = re.findall(r"(\w+): done already", out)
    check(skipped == list(STAGES), f"second run skipped {skipped}, expected {list(STAGES)}:\n{out[-3000:]}")
    after = len(stack.ray("/api/jobs/").json())
    check(after == before, f"second run submitted {after - before} jobs")
    summary["rerun"] = {"seconds": round(time.monotonic() - t, 1), "skipped": skipped, "jobs_submitted": after - before}
    say(f"docker compose run --rm jobs again: exit 0 in {summary['rerun']['seconds']} s, skipped {skipped}, "
        "no job submitted")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", type=Path, required=True, help="a real video for /v1/embed and /v1/reconstruct")
    ap.add_argument("--summary", type=Path, required=True, help="where to write the numbers (JSON)")
    ap.add_argument("--logs", type=Path, required=True, help="folder for up.log")
    ap.add_argument("--checkpoint-every", type=int, required=True)
    ap.add_argument("--max-steps", type=int, required=True)
    args = ap.parse_args(argv)
    stack, summary, seen = Stack.from_env(), {}, {}
    try:
        up = start(summary, args.logs / "up.log")
        try:
            head_healthy(stack, summary)
            dashboard_auth(stack)
            follow_until_pretrain_runs(stack, seen)
            inject_fault(stack, args.checkpoint_every, summary)
            pipeline_finishes(stack, up, seen, summary)
        finally:
            if up.poll() is None:
                up.kill()
        api_ready(stack, summary)
        api_calls(stack, args.video, summary)
        dashboard_job_list(stack, summary)
        non_root(summary)
        api_volume_read_only()
        tensorboard(stack, summary)
        fault_evidence(stack, args.max_steps, summary)
        rerun_skips(stack, summary)
    except (CheckFailed, subprocess.TimeoutExpired, KeyError, StopIteration, ValueError) as e:
        say(f"FAILED: {type(e).__name__}: {e}")
        return 1
    finally:
        summary.pop("t_up", None)
        args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    say("all stack checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
