"""Pre-training on real Ray Train with CPU workers, fed by Ray Data from the ingest sample shards.

One TorchTrainer per test, in the session's in-process Ray (`ray_session`); the nano preset, a few dozen steps.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
from trainer_testlib import TINY, recipe

import videomae
from trainer import pretrain
from trainer.metrics import read_metrics
from videomae.model import VideoMAEPretrain

pytestmark = pytest.mark.slow


def test_loss_falls_and_the_run_is_loadable(pretrained):
    cfg, result = pretrained
    rows = read_metrics(cfg.run.run_dir)
    assert [r["step"] for r in rows] == list(range(10, 101, 10))
    first, last = rows[0]["loss"], min(r["loss"] for r in rows[-3:])
    assert last < first - 0.03, f"loss did not fall: {[round(r['loss'], 3) for r in rows]}"
    assert result.metrics["samples_seen"] == 100 * cfg.global_batch
    assert all(r["clips_per_s"] > 0 and r["tokens_per_s"] > 0 and r["step_time"] > 0 for r in rows)
    # The checkpoint (model/ inside) and the exported model directory both load as the pre-training model.
    ckpt = videomae.load_model(result.checkpoint.path)
    exported = videomae.load_model(f"{cfg.run.run_dir}/model")
    assert isinstance(ckpt, VideoMAEPretrain) and ckpt.cfg.preset == "nano"
    for (k, a), b in zip(ckpt.state_dict().items(), exported.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert (Path(cfg.run.run_dir) / "config.yaml").exists()  # the resolved config beside the checkpoints


def test_monitor_reports_learning_health(pretrained):
    """Held-out loss against predicting nothing, a k-NN probe on the labeled motion clips, and a picture per check
    (monitor.every 50: at steps 50 and 100)."""
    cfg, _ = pretrained
    checks = [r for r in read_metrics(cfg.run.run_dir) if "heldout_loss" in r]
    assert [r["step"] for r in checks] == [50, 100]
    for r in checks:
        assert 0 < r["heldout_loss"] < 2 and 0 < r["heldout_loss_zero"] < 2
        assert 0 <= r["probe_top1"] <= 1
    # The same held-out clips under the same fixed masks at every check: the "predict nothing" loss is a constant of
    # the data, the model's loss moves with the weights. (Whether 100 steps beat it depends on the data: on the
    # sample set they do not yet, at 1.004 against 0.998 in one CI run.)
    assert checks[0]["heldout_loss_zero"] == pytest.approx(checks[1]["heldout_loss_zero"], rel=1e-5)
    assert checks[0]["heldout_loss"] != checks[1]["heldout_loss"]
    pictures = sorted(p.name for p in (Path(cfg.run.run_dir) / "monitor").glob("*.png"))
    assert pictures == ["step_0000050.png", "step_0000100.png"]


def test_same_seed_same_first_loss(ray_session, sample_shards, tmp_path):
    losses = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        cfg = recipe("pretrain", TINY, sample_shards, tmp_path, name, "optim.max_steps=1", "run.log_every=1",
                     f"run.seed={seed}")
        pretrain.main(cfg=cfg)
        losses[name] = read_metrics(cfg.run.run_dir)[0]["loss"]
    assert losses["a"] == losses["b"]
    assert losses["a"] != losses["c"]


# A killed worker: tests/trainer/test_fast_paths_ray.py kills rank 0 of a 2-worker run and checks that both workers
# restart from the last checkpoint with every clip's data position continuing exactly (it replaced the 1-worker test).


def test_rerun_same_name_resumes(pretrained, sample_shards):
    """Rerunning a finished run's name with a longer schedule continues from its last checkpoint."""
    cfg, _ = pretrained
    longer = recipe("pretrain", TINY, sample_shards, cfg.run.storage_path, cfg.run.name, "optim.max_steps=105",
                    "optim.warmup_steps=10", "optim.lr=3e-3", "run.log_every=5", "run.checkpoint_every=50")
    temp_copies = set(Path(tempfile.gettempdir()).glob("checkpoint_tmp_*"))
    result = pretrain.main(cfg=longer)
    assert result.metrics["attempt_start_step"] == 100 and result.metrics["step"] == 105
    # Restored in place (Checkpoint.as_directory), not copied to a /tmp/checkpoint_tmp_* folder left behind.
    assert set(Path(tempfile.gettempdir()).glob("checkpoint_tmp_*")) <= temp_copies
    assert result.metrics["attempt_first_seq"] == 100 * cfg.global_batch
