"""The quick start end to end, shortened by its config (configs/demo/quick.yaml): `python scripts/demo.py --quick`
as a user runs it — sample videos, ingest, pre-training and post-pre-training each on a real in-process Ray, the API
on a real uvicorn — then its outputs: files that exist and parse, PNGs that decode, accuracy above chance, models
that load, and no server left running."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from infra_checks import ROOT
from PIL import Image

import videomae

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    res = subprocess.run([sys.executable, "scripts/demo.py", "--quick", "--out", str(out)], cwd=ROOT,
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, f"demo failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    (out / "console.log").write_text(res.stdout + res.stderr)
    return out


def test_demo_shows_progress_for_every_stage(demo):
    console = (demo / "console.log").read_text()
    for i, stage in enumerate(["sample", "ingest", "pretrain", "postpretrain", "serve", "report"], start=1):
        assert f"[{i}/6] {stage}:" in console, stage
    assert "[train " in console  # the trainer's step lines come through while it runs
    assert "done in" in console


def test_outputs_exist_and_parse(demo):
    summary = json.loads((demo / "summary.json").read_text())
    report = (demo / "report.md").read_text()
    for name in summary["outputs"].values():
        assert (demo / name).exists() if "/" not in name else Path(name).exists(), name
    assert "val top-1" in report and "![reconstruction](reconstruction.png)" in report

    counts = summary["ingest"]["counts"]
    total = counts["total"]
    # The generator plants copies and junk: ingest must have found some of each, and every input is accounted for.
    assert total["kept"] > 0 and total["clips"] > 0 and total["duplicates"] > 0 and sum(total["rejected"].values()) > 0
    assert total["seen"] == total["kept"] + total["duplicates"] + sum(total["rejected"].values())
    assert {"motion_a", "motion_b", "mixed"} <= set(counts)  # the labeled sources and the real/junk mix

    pre = summary["pretrain"]
    assert pre["steps"] == 20 and all(math.isfinite(loss) for _, loss in pre["curve"])
    assert 0 < pre["last_loss"] < 10


def test_post_pretraining_beats_chance(demo):
    post = json.loads((demo / "summary.json").read_text())["postpretrain"]
    assert post["num_classes"] == len(post["classes"]) >= 6
    assert post["val_videos"] >= 20
    assert post["val_top1"] > post["chance"], post


def test_pngs_decode(demo):
    with Image.open(demo / "loss_curve.png") as im:
        im.load()
        assert im.format == "PNG" and im.width > 300 and im.height > 200
    with Image.open(demo / "reconstruction.png") as im:
        im.load()
        assert im.format == "PNG" and im.width > 0 and im.height > 0


def test_api_answers_came_from_the_trained_model(demo):
    summary = json.loads((demo / "summary.json").read_text())
    model = videomae.load_model(summary["outputs"]["pretrain_model"])
    assert model.has_decoder
    for name, embed in summary["api"]["embed"].items():
        assert embed["dim"] == model.cfg.embed_dim and embed["clips"] >= 1, name
    rec = summary["api"]["reconstruct"]
    assert rec["bytes"] == (demo / "reconstruction.png").stat().st_size
    assert math.isfinite(rec["loss"]) and rec["psnr"] > 0
    clf = videomae.load_model(summary["outputs"]["postpretrain_model"])
    assert clf.cfg.num_classes == summary["postpretrain"]["num_classes"]


def test_no_server_left_running(demo):
    out = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    leftovers = [line for line in out.splitlines() if str(demo) in line and not line.startswith("Z")]
    assert not leftovers, leftovers
