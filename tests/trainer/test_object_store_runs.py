"""Runs stored where a cluster user stores them: `run.storage_path=s3://bucket/runs`, against moto's S3 server on
loopback, reached through AWS_ENDPOINT_URL (which boto3, pyarrow and so Ray Train and `videomae.storage` read).

Pre-training and post-pre-training run as users run them, `python trainer/<recipe>.py --config ... --set ...`, each
starting its own Ray with the bucket's environment. Every output of a run lands in its own directory in the bucket:
checkpoints, `metrics.jsonl` and TensorBoard's events (before the fix, metrics of every URI run went to one shared
`~/videomae_runs_local` and never reached the run), the exported model; a rerun of the same name resumes from the
bucket and appends to the same metrics; `videomae.load_model` and the API load the models from their URIs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from trainer_testlib import REPO, TINY

import videomae
from trainer.metrics import read_metrics
from videomae import storage
from videomae.model import model_kind

pytestmark = pytest.mark.slow
RUNS = "s3://bucket/runs"
SMALL = ["model.preset=nano", "run.log_every=2", "run.checkpoint_every=2", "data.max_tasks=1",
         "data.cpus_per_task=0.5", "optim.warmup_steps=1"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    """moto's S3 server on a free loopback port with an empty `bucket`; this process and the runs reach it through
    the AWS_* environment (no credentials leave the machine: moto accepts any)."""
    import boto3

    tmp = tmp_path_factory.mktemp("s3")
    port = _free_port()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    log = (tmp / "moto.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(env["AWS_ENDPOINT_URL"], timeout=2)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto server did not start: {(tmp / 'moto.log').read_text()[-2000:]}")
            time.sleep(0.3)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        boto3.client("s3").create_bucket(Bucket="bucket")
        yield {"env": env, "home": tmp / "home"}
    proc.terminate()
    proc.wait(timeout=20)


def _run(bucket: dict, recipe: str, config: str, *sets: str) -> None:
    """`python trainer/<recipe>.py` from the repository root with the bucket's environment and a HOME of its own."""
    home = bucket["home"]
    home.mkdir(exist_ok=True)
    env = {**os.environ, **bucket["env"], "HOME": str(home), "RAY_COLOR_PREFIX": "0"}
    argv = [sys.executable, f"trainer/{recipe}.py", "--config", config]
    for s in sets:
        argv += ["--set", s]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.fixture(scope="module")
def runs(bucket, sample_shards):
    """A 4-step pre-training run, its rerun to 6 steps, and 2 steps of post-pre-training from its model, all in the
    bucket."""
    data = f"data.path={sample_shards}"
    _run(bucket, "pretrain", TINY, data, *SMALL, f"run.storage_path={RUNS}", "run.name=pre", "optim.max_steps=4")
    first = read_metrics(f"{RUNS}/pre")
    _run(bucket, "pretrain", TINY, data, *SMALL, f"run.storage_path={RUNS}", "run.name=pre", "optim.max_steps=6")
    _run(bucket, "postpretrain", "configs/postpretrain/tiny.yaml", data, *SMALL, f"run.storage_path={RUNS}",
         "run.name=post", f"model.init_from={RUNS}/pre/model", "optim.max_steps=2", "eval.num_crops=1",
         "eval.num_clips=1")
    return {"first": first}


def test_each_run_keeps_its_outputs_in_its_own_directory(bucket, runs):
    for name, kind in (("pre", "pretrain"), ("post", "classifier")):
        files = {f.removeprefix(f"{RUNS}/{name}/") for f in storage.find(f"{RUNS}/{name}")}
        assert {"metrics.jsonl", "config.yaml", "model/config.json", "model/model.safetensors"} <= files, files
        assert any(f.startswith("checkpoint_") and f.endswith("/model/model.safetensors") for f in files), files
        assert any(f.startswith("tensorboard/events.out.tfevents.") for f in files), files
        assert model_kind(videomae.load_model(f"{RUNS}/{name}/model")) == kind
    assert not (bucket["home"] / "videomae_runs_local").exists()  # nothing shared outside the runs


def test_metrics_are_the_runs_own_and_a_rerun_resumes_and_appends(runs):
    assert [r["step"] for r in runs["first"]] == [2, 4]
    pre = read_metrics(f"{RUNS}/pre")
    assert [r["step"] for r in pre] == [2, 4, 6]  # the rerun went on from step 4, in the same file
    assert [r["attempt_start_step"] for r in pre] == [0, 0, 4]
    post = read_metrics(f"{RUNS}/post")
    assert [r["step"] for r in post] == [2] and "val_top1" in post[-1]  # its own rows only


def test_the_api_serves_a_model_from_the_bucket(bucket, runs, tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "api"))  # tests/api's server helpers
    from api_helpers import API_KEY, ffmpeg, start_server, stop_server, upload

    video = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x72:rate=25", "-t", "1", "-pix_fmt", "yuv420p", str(video))
    server = start_server(tmp_path, {**bucket["env"], "VIDEOMAE_MODEL": f"{RUNS}/pre/model",
                                     "VIDEOMAE_API_KEYS": API_KEY})
    try:
        with server.client() as client:
            models = client.get("/v1/models").json()["models"]
            embedded = client.post("/v1/embed", files=upload(video))
    finally:
        stop_server(server)
    assert [m["model_type"] for m in models] == ["pretrain"] and models[0]["preset"] == "nano"
    assert embedded.status_code == 200 and embedded.json()["dim"] == 96, embedded.text


def test_a_run_directory_uri_loads_its_exported_model(runs):
    run_dir, exported = videomae.load_model(f"{RUNS}/pre"), videomae.load_model(f"{RUNS}/pre/model")
    assert all(bool((a == b).all()) for a, b in zip(run_dir.state_dict().values(), exported.state_dict().values(),
                                                    strict=True))
