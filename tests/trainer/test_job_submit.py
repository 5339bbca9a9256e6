"""`ray job submit` of the tiny pre-training recipe to a real local cluster (`ray start --head`), then load its model.

The cluster is ours alone: its own ports and temp dir, started from the venv's `ray`, stopped by killing the
`ray start --block` process group we started (never `ray stop`, which would also stop other Ray instances on the
machine, including this test session's). Ray 2.60 turns token auth on for local clusters; `ray start` writes the
token to ~/.ray/auth_token and the `ray job` CLI on the same machine reads it from there.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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


@pytest.fixture
def local_cluster(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    gcs, dash = _free_port(), _free_port()
    ray = str(Path(sys.executable).parent / "ray")
    head = subprocess.Popen([ray, "start", "--head", "--block", f"--port={gcs}", "--num-cpus=2",
                             f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1", "--include-dashboard=true",
                             f"--temp-dir={tmp_path / 'ray'}", "--object-store-memory=300000000"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 120
    while time.time() < deadline:
        probe = subprocess.run([ray, "job", "list", "--address", address], env=env, capture_output=True, text=True)
        if probe.returncode == 0:
            break
        if head.poll() is not None:
            pytest.fail(f"ray start exited: {head.stdout.read().decode()[-2000:]}")
        time.sleep(2)
    else:
        pytest.fail("the local cluster's job server did not come up in 120 s")
    try:
        yield address, env
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # our `ray start --block` session: head, raylet, GCS, workers
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


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
