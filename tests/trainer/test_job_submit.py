"""`ray job submit` to a real local cluster (`ray start --head`, one for the module): the tiny pre-training recipe, then
load its model; a feature extraction (trainer/extract.py) over the test shards.

The cluster is ours alone: its own ports and temp dir, started from the venv's `ray`, stopped by killing the
`ray start --block` process group we started (never `ray stop`, which would also stop other Ray instances on the
machine, including this test session's). Ray 2.60 turns token auth on for local clusters: `ray start` writes the
token to ~/.ray/auth_token, and the `ray job` CLI on the same machine sends it when RAY_AUTH_MODE=token.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from trainer_testlib import REPO

import videomae
from trainer.checkpointing import latest_checkpoint_dir

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_cluster():
    # The `ray job` CLI sends the cluster's token (~/.ray/auth_token, written by `ray start`) only in token mode.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    gcs, dash = _free_port(), _free_port()
    # Every other port explicit too: the defaults (dashboard agent 52365, ...) may be held by another Ray on the
    # machine, and then the job agent never comes up ("No available agent to submit job"), as seen once in CI here.
    agent, agent_grpc, metrics, runtime_env, node_mgr, obj_mgr = (_free_port() for _ in range(6))
    temp = tempfile.mkdtemp(prefix="rj", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    ray = str(Path(sys.executable).parent / "ray")
    log = open(f"{temp}.log", "wb")  # a file, not a pipe: a full pipe would block `ray start`
    head = subprocess.Popen([ray, "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2",
                             f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1", "--include-dashboard=true",
                             f"--temp-dir={temp}", "--object-store-memory=300000000",
                             f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
                             f"--metrics-export-port={metrics}", f"--runtime-env-agent-port={runtime_env}",
                             f"--node-manager-port={node_mgr}", f"--object-manager-port={obj_mgr}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    try:
        # Ready = a trivial job runs: the job server answers `ray job list` before its agent can take jobs.
        deadline = time.time() + 240
        while True:
            probe = subprocess.run([ray, "job", "submit", "--address", address, "--", "true"], env=env,
                                   capture_output=True, text=True, timeout=120)
            if probe.returncode == 0:
                break
            if head.poll() is not None:
                pytest.fail(f"ray start exited: {Path(f'{temp}.log').read_text()[-2000:]}")
            if time.time() > deadline:
                pytest.fail(f"the cluster took no job in 240 s: {(probe.stdout + probe.stderr)[-1500:]}")
            time.sleep(3)
        yield address, env
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # our `ray start --block` session: head, raylet, GCS, workers
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        Path(f"{temp}.log").unlink(missing_ok=True)


def test_ray_job_submit_tiny_pretrain(local_cluster, sample_shards, tmp_path):
    address, env = local_cluster
    storage = tmp_path / "runs"
    cmd = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", address, "--working-dir", ".",
           "--", "python", "trainer/pretrain.py", "--config", "configs/pretrain/tiny.yaml",
           "--set", f"data.path={sample_shards}", "--set", "model.preset=nano", "--set", f"run.storage_path={storage}",
           "--set", "run.name=submitted", "--set", "optim.max_steps=6", "--set", "run.checkpoint_every=3",
           "--set", "run.log_every=3", "--set", "run.tensorboard=false"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0 and "succeeded" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    ckpt = latest_checkpoint_dir(str(storage / "submitted"))
    assert ckpt is not None
    model = videomae.load_model(ckpt)
    assert model.cfg.preset == "nano" and model.has_decoder
    assert videomae.load_model(storage / "submitted" / "model").cfg.preset == "nano"


def test_ray_job_submit_extract(local_cluster, sample_shards, tmp_path):
    """trainer/extract.py submitted as a job: it connects to the cluster (RAY_ADDRESS, set by the job) and writes its
    features where the driver says."""
    import json

    address, env = local_cluster
    videomae.create_model("nano").save(tmp_path / "model")
    out = tmp_path / "features"
    cmd = [str(Path(sys.executable).parent / "ray"), "job", "submit", "--address", address, "--working-dir", ".",
           "--", "python", "trainer/extract.py", "--config", "configs/extract/sample.yaml",
           "--set", f"input.path={sample_shards}", "--set", "input.split=val", "--set", f"output={out}",
           "--set", f"model.source={tmp_path / 'model'}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0 and "succeeded" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"]["kind"] == "shards" and manifest["counts"]["rejects"] == 0
    assert manifest["counts"]["videos"] == manifest["counts"]["listed"] > 0 and manifest["counts"]["windows"] > 0
