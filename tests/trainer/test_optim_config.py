"""Optimizer groups, the lr schedule, augmentation boxes and config validation (no Ray)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from trainer_testlib import REPO

from trainer.config import ConfigError, PretrainConfig, load_config
from trainer.optim import Schedule, param_groups
from videomae import create_classifier, create_model
from videomae.augment import multi_scale_box, spatial_crops


def test_no_decay_on_biases_norms_and_mask_token():
    model = create_model("nano")
    groups = param_groups(model, weight_decay=0.05)
    no_decay = {n for g in groups if g["weight_decay"] == 0 for n in g["names"]}
    decay = {n for g in groups if g["weight_decay"] > 0 for n in g["names"]}
    assert "mask_token" in no_decay and "encoder.blocks.0.attn.q_bias" in no_decay
    assert "encoder.blocks.0.norm1.weight" in no_decay and "decoder.head.bias" in no_decay
    assert "encoder.blocks.0.attn.qkv.weight" in decay and "encoder.patch_embed.proj.weight" in decay
    assert "pos_embed" not in {n for n, _ in model.named_parameters()}  # fixed buffer, never optimised


def test_layer_decay_scales_by_depth():
    clf = create_classifier("nano", num_classes=5)
    groups = param_groups(clf, weight_decay=0.05, layer_decay=0.5)
    scale = {n: g["lr_scale"] for g in groups for n in g["names"]}
    depth = clf.cfg.depth
    assert scale["head.weight"] == 1.0
    assert scale["blocks.0.mlp.fc1.weight"] == 0.5**depth
    assert scale["patch_embed.proj.weight"] == 0.5 ** (depth + 1)


def test_a_training_wrapper_groups_its_student_by_the_students_names():
    """Distillation's wrapper (student + projection): the student's layers decay as the student alone does, the
    projection is a last layer."""
    from trainer.distill import Distiller

    clf = create_classifier("nano", num_classes=5)
    wrapped = param_groups(Distiller(clf, 192), weight_decay=0.05, layer_decay=0.5)
    alone = {n: (g["lr_scale"], g["weight_decay"]) for g in param_groups(clf, 0.05, 0.5) for n in g["names"]}
    scale = {n: (g["lr_scale"], g["weight_decay"]) for g in wrapped for n in g["names"]}
    assert {n.removeprefix("student."): v for n, v in scale.items() if n.startswith("student.")} == alone
    assert scale["project.weight"] == (1.0, 0.05) and scale["project.bias"] == (1.0, 0.0)


def test_accumulation_sets_the_effective_batch():
    base = ["data.path=/x", "model.preset=nano", "run.name=a", "data.batch_size=4", "scaling.num_workers=2",
            "optim.lr=1.0e-3"]
    cfg = load_config("pretrain", None, [*base, "optim.accum_steps=4"])
    assert cfg.micro_batch == 8 and cfg.global_batch == 32 and cfg.lr_scale == 32 / 256
    with pytest.raises(ConfigError, match="micro-batch of 8 clips"):  # streams divide each micro-batch
        load_config("pretrain", None, [*base, "optim.accum_steps=4", "data.streams=16"])
    with pytest.raises(ConfigError, match="accum_steps"):
        load_config("pretrain", None, [*base, "optim.accum_steps=0"])


def test_schedule_warms_up_from_zero_then_cosine_to_min():
    s = Schedule(lr=1e-3, min_lr=1e-5, warmup_lr=0.0, warmup_steps=10, total_steps=100)
    assert s(0) == 0.0 and s(9) == pytest.approx(1e-3) and s(10) == pytest.approx(1e-3)
    lrs = [s(i) for i in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    assert s(99) == pytest.approx(1e-5, rel=0.05)


def test_lr_scales_with_global_batch():
    cfg = load_config("pretrain", REPO / "configs/pretrain/vit_g.yaml")
    assert cfg.global_batch == 32 * 64 and cfg.lr_scale == 8.0  # 6e-4 x 2048/256, as run_mae_pretraining.py


def test_multi_scale_boxes_follow_the_reference():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = multi_scale_box(256, 340, 224, rng)
        sizes = [256, 224, 192, 168]  # 1, .875 (= 224, snapped to the input size), .75, .66 of the short side
        assert h in sizes and w in sizes and abs(sizes.index(h) - sizes.index(w)) <= 1  # max_distort 1
        assert 0 <= top <= 256 - h and 0 <= left <= 340 - w
    crops = spatial_crops(np.zeros((4, 64, 96, 3), np.uint8), 64, 3)
    assert len(crops) == 3 and crops[0].shape == (3, 4, 64, 64)


@pytest.mark.parametrize("override, key", [
    ("data.batch_sise=3", "data.batch_sise"),
    ("model.preset=enormous", "model.preset"),
    ("mask.decoder=diagonal", "mask.decoder"),
    ("optim.lr=-1", "optim.lr"),
    ("data.weights=[1, 2]", "data.weights"),
    ("model.overrides.img_size=72", "model.overrides"),  # not a multiple of the patch size
    ("data.streams=3", "data.streams"),  # a global batch of 4 cannot be drawn evenly from 3 streams
    ("model.attention=flash", "model.attention"),
])
def test_bad_keys_are_named(override, key):
    with pytest.raises(ConfigError) as err:
        load_config("pretrain", REPO / "configs/pretrain/tiny.yaml", [override])
    assert key in str(err.value)


def test_running_cell_needs_an_even_grid():
    with pytest.raises(ConfigError, match="mask.decoder"):
        load_config("pretrain", REPO / "configs/pretrain/tiny.yaml", ["model.overrides.img_size=48"])


def test_script_fails_before_ray_starts(tmp_path):
    """A bad key stops the script on the driver with exit 2, naming the key, and no run directory appears."""
    proc = subprocess.run([sys.executable, "trainer/pretrain.py", "--config", "configs/pretrain/tiny.yaml",
                           "--set", f"run.storage_path={tmp_path}", "--set", "optim.warmup_stepz=3"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "optim.warmup_stepz" in proc.stderr
    assert "Started a local Ray instance" not in proc.stderr and not any(tmp_path.iterdir())


def test_set_overrides_and_round_trip():
    cfg = load_config("pretrain", REPO / "configs/pretrain/tiny.yaml", ["optim.max_steps=7", "data.path=[a, b]",
                                                                         "data.weights=[1, 3]"])
    # Relative paths are resolved on the driver, against the directory the command runs in (issue 17: a Ray worker
    # or a `ray job submit` entrypoint has another working directory); validating again (on a worker) keeps them.
    assert cfg.optim.max_steps == 7 and cfg.data.paths == [os.path.abspath("a"), os.path.abspath("b")]
    assert PretrainConfig.model_validate(cfg.model_dump(mode="json")) == cfg


def test_warmup_longer_than_the_run_is_named():
    from trainer.config import OptimSection
    from trainer.optim import warmup_problem

    assert warmup_problem(OptimSection(max_steps=20, warmup_steps=5), 20, 10) is None
    problem = warmup_problem(OptimSection(max_steps=20, warmup_steps=40), 20, 10)
    assert problem.startswith("optim.warmup_steps: a warmup of 40 steps is longer than the run (20 steps)")
    assert "optim.warmup_epochs: a warmup of 30 steps" in warmup_problem(OptimSection(warmup_epochs=3), 20, 10)
