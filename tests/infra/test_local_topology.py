"""infra/local/: start the cluster topology without Docker (Ray head + a worker node + the API), run real jobs on it
with `ray job submit` (ingest, a few pre-training steps, feature extraction), serve the model that job exported, and
stop everything: no process of the topology may survive, and the test session's own in-process Ray must.

Non-default free ports and a temporary state directory, so it can run beside other Ray sessions on the machine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from infra_checks import ROOT

import videomae
from ingest.sample_data import generate, sources_config
from trainer.checkpointing import latest_checkpoint_dir

pytestmark = pytest.mark.slow

START, STOP, STATUS = (ROOT / "infra/local" / f for f in ("start.sh", "stop.sh", "status.sh"))


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def topology_env(state: Path) -> dict[str, str]:
    """What `source $STATE/env.sh` gives a shell (parsed, not sourced); no token or address of this session."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    for line in (state / "env.sh").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = value.replace("$PATH", os.environ["PATH"])
    return env


def process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process, from /proc."""
    table = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces and parentheses
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        table[int(d.name)] = (int(fields[1]), fields[0], cmdline)
    return table


def processes_of(state: Path) -> set[int]:
    """Every pid under the pids start.sh recorded (the roots and all their descendants)."""
    table = process_table()
    found = {int(f.read_text()) for f in (state / "pids").glob("*.pid")} & set(table)
    grew = True
    while grew:
        more = {pid for pid, (ppid, _, _) in table.items() if ppid in found} - found
        found |= more
        grew = bool(more)
    return found


def alive(pids: set[int]) -> dict[int, str]:
    """Those still running (a zombie has exited; only its parent can reap it)."""
    table = process_table()
    return {pid: table[pid][2][:120] for pid in pids if pid in table and table[pid][1] not in ("Z", "X")}


def submit(env: dict[str, str], *entrypoint: str, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run(["ray", "job", "submit", "--working-dir", str(ROOT), "--", *entrypoint], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def run(cmd: list[str], timeout: float = 240, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, **kw)
    assert res.returncode == 0, f"{cmd[0]} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def test_local_topology_runs_jobs_and_serves_then_stops_cleanly(tmp_path, ray_session):
    state, data = tmp_path / "state", tmp_path / "data"
    # Only the first labeled source of the generated sample set: enough clips for a few steps, quick to ingest.
    generate(data, "small", seed=0)
    config = tmp_path / "ingest.yaml"
    config.write_text(yaml.safe_dump({"output": str(data / "shards"), "sources": sources_config(data)[:1],
                                      "clips": {"num_frames": 8, "stride": 4, "short_side": 64}}))
    ray_port, dash_port, client_port, api_port = free_ports(4)
    common = ["--state", str(state), "--ray-port", str(ray_port), "--dashboard-port", str(dash_port),
              "--client-port", str(client_port), "--api-port", str(api_port)]
    tracked: set[int] = set()
    try:
        run(["bash", str(START), *common, "--no-api", "--num-cpus", "1", "--workers", "1", "--worker-cpus", "1"])
        tracked |= processes_of(state)
        env = topology_env(state)
        assert env["RAY_ADDRESS"] == f"http://127.0.0.1:{dash_port}" and env["RAY_AUTH_MODE"] == "token"

        # Token auth is on: the job API refuses a client without the token.
        no_token = {**env, "RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}
        res = subprocess.run(["ray", "job", "list"], env=no_token, capture_output=True, text=True, timeout=60)
        assert res.returncode != 0 and "uthenticat" in res.stdout + res.stderr

        res = submit(env, "python", "-m", "ingest", "--config", str(config))
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert (data / "shards" / "manifest.json").is_file()
        runs = tmp_path / "runs"
        res = submit(env, "python", "trainer/pretrain.py", "--config", "configs/pretrain/tiny.yaml",
                     "--set", "model.preset=nano", "--set", f"data.path={data / 'shards'}",
                     "--set", "optim.max_steps=2", "--set", "optim.warmup_steps=1", "--set", "run.log_every=1",
                     "--set", f"run.storage_path={runs}", "--set", "run.name=topology", "--set", "data.batch_size=2")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        model = runs / "topology" / "model"
        assert (model / "config.json").is_file() and (model / "model.safetensors").is_file()
        # What the job left loads: its last checkpoint and the exported model.
        checkpoint = latest_checkpoint_dir(str(runs / "topology"))
        assert checkpoint is not None and videomae.load_model(checkpoint).cfg.preset == "nano"
        assert videomae.load_model(model).has_decoder
        # Feature extraction as a job too: it joins the cluster (RAY_ADDRESS, set for the job) and writes where the
        # driver says, from ingest's shards with the model the job above trained.
        features = tmp_path / "features"
        res = submit(env, "python", "trainer/extract.py", "--config", "configs/extract/sample.yaml",
                     "--set", f"input.path={data / 'shards'}", "--set", f"output={features}",
                     "--set", f"model.source={model}")
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        manifest = json.loads((features / "manifest.json").read_text())
        assert manifest["input"]["kind"] == "shards" and manifest["counts"]["rejects"] == 0
        assert manifest["counts"]["videos"] == manifest["counts"]["listed"] > 0 and manifest["counts"]["windows"] > 0
        # The job ran on the cluster: Ray lists it as succeeded.
        listed = run(["ray", "job", "list"], env=env, timeout=60).stdout
        assert listed.count("SUCCEEDED") >= 3

        # Serve the model the job just trained, as a developer would: the API joins the same state directory.
        run(["bash", str(START), *common, "--api-only", "--model", str(model)])
        tracked |= processes_of(state)
        status = run(["bash", str(STATUS), "--state", str(state)]).stdout
        assert all(f"{name}: running" in status for name in ("api", "ray-head", "ray-worker-1")), status
        base = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{base}/readyz", timeout=10).json()["status"] == "ready"
        video = next((data / "motion_a").glob("*"))
        with video.open("rb") as fh:
            r = httpx.post(f"{base}/v1/embed", files={"file": (video.name, fh, "video/mp4")}, timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["dim"] == len(body["embedding"]) > 0 and body["clips"]
    finally:
        tracked |= processes_of(state)
        stopped = subprocess.run(["bash", str(STOP), "--state", str(state), "--grace", "15"], capture_output=True,
                                 text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    time.sleep(0.5)
    assert len(tracked) > 10  # head, worker and API with their Ray children were seen
    assert not alive(tracked), f"left running: {alive(tracked)}"
    assert not list((state / "pids").glob("*.pid"))
    assert subprocess.run(["bash", str(STATUS), "--state", str(state)], capture_output=True).returncode == 3
    strays = {pid: cmd for pid, (_, st, cmd) in process_table().items() if str(state) in cmd and st != "Z"}
    assert not strays, f"processes still naming the state directory: {strays}"
    # stop.sh touched nothing else: the session's in-process Ray still runs tasks.
    assert ray_session.get(ray_session.remote(lambda: 41 + 1).remote(), timeout=60) == 42
