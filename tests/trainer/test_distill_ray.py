"""Distillation (trainer/distill.py) end to end on real Ray Train: a tiny-width teacher with a head, a nano student
from the session's pre-trained encoder; the exported student loads and serves."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from trainer_testlib import REPO, recipe

import videomae
from trainer import distill
from trainer.checkpointing import STATE_FILE
from trainer.metrics import read_metrics
from videomae.model import VideoMAEClassifier
from videomae.modeldir import MODEL_SUBDIR

pytestmark = pytest.mark.slow

CONFIG = "configs/distill/tiny.yaml"


def test_distilled_student_learns_from_the_teacher_resumes_and_serves(pretrained, sample_shards, tmp_path):
    """Teacher: the `tiny` preset's width (192, twice the student's: the projection is used) at the student's 64 px,
    with 8 classes (labels.json's): features and logits are distilled. One worker, 2 micro-batches per step, killed
    at step 6: the restart restores the projection from train_state.pt (the loss of step 5 is replayed exactly)."""
    pre_cfg, _ = pretrained
    torch.manual_seed(0)
    teacher = videomae.create_classifier("tiny", num_classes=8, img_size=64)
    teacher_dir = tmp_path / "teacher"
    teacher.save(teacher_dir)
    cfg = recipe("distill", CONFIG, sample_shards, tmp_path, "distill", f"teacher.init_from={teacher_dir}",
                 "model.overrides.img_size=64", f"model.init_from={pre_cfg.run.run_dir}/model", "data.batch_size=4",
                 "optim.accum_steps=2", "optim.max_steps=8", "optim.warmup_steps=0", "run.log_every=1",
                 "run.checkpoint_every=4", "debug.fail_at_step=6", "eval.num_crops=1", "eval.num_clips=1")
    result = distill.main(cfg=cfg)
    run_dir = cfg.run.run_dir

    rows = read_metrics(run_dir)
    first = {r["step"]: r for r in rows if r["attempt_start_step"] == 0}
    again = {r["step"]: r for r in rows if r["attempt_start_step"] == 4}
    assert sorted(again) == list(range(5, 9))
    assert abs(again[5]["loss"] - first[5]["loss"]) <= 1e-5 * first[5]["loss"]  # the projection was restored
    assert again[8]["loss"] < first[1]["loss"]  # the student moves toward the teacher
    m = result.metrics
    assert m["val_videos"] > 20 and 0 <= m["val_top1"] <= 1

    student = videomae.load_model(f"{run_dir}/{MODEL_SUBDIR}")
    assert isinstance(student, VideoMAEClassifier) and student.cfg.preset == "nano"
    assert student.cfg.num_classes == 8 and student.cfg.embed_dim == 96
    extra = torch.load(f"{result.checkpoint.path}/{STATE_FILE}", weights_only=False)["extra_weights"]
    assert extra["project.weight"].shape == (192, 96)  # training state, not in the model directory

    sys.path.insert(0, str(REPO / "tests" / "api"))
    from api_helpers import API_KEY, ffmpeg, start_server, stop_server, upload

    video = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x72:rate=25", "-t", "1", "-pix_fmt", "yuv420p", str(video))
    server = start_server(tmp_path, {"VIDEOMAE_MODEL": f"{run_dir}/{MODEL_SUBDIR}", "VIDEOMAE_API_KEYS": API_KEY})
    try:
        with server.client() as client:
            response = client.post("/v1/embed", files=upload(video))
    finally:
        stop_server(server)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dim"] == 96 and np.isfinite(body["embedding"]).all()


def test_teacher_tokens_are_resampled_to_the_student_grid():
    """A teacher with smaller patches (more tokens) meets the student token by token, each at the same place: a
    token grid that is a linear ramp along x stays that ramp, sampled at the student's token centres."""
    ramp = torch.linspace(0, 1, 8).repeat(2, 8, 1)  # (t 2, h 8, w 8): value = x
    tokens = ramp.reshape(1, -1, 1).expand(1, -1, 3)  # (B 1, N 128, C 3)
    out = distill.resample_tokens(tokens, (2, 8, 8), (2, 4, 4))
    assert out.shape == (1, 32, 3)
    x = out[0, :, 0].reshape(2, 4, 4)
    assert torch.allclose(x, x[:1, :1, :].expand(2, 4, 4)) and (x[0, 0].diff() > 0).all()


def test_a_missing_teacher_stops_on_the_driver_naming_the_key(tmp_path, caplog):
    cfg = recipe("distill", CONFIG, tmp_path / "shards", tmp_path, "none", f"teacher.init_from={tmp_path / 'none'}")
    with pytest.raises(SystemExit) as e:
        distill.main(cfg=cfg)
    assert e.value.code == 2 and f"no checkpoint at {tmp_path / 'none'}" in caplog.text
