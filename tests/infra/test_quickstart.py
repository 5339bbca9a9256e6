"""The README's first hour as written, with `make demo` shortened by its config: in a fresh copy of the repository
(tests/docs/doc_runner.py's workspace), `python scripts/demo.py --quick --out runs/demo` writes where `make demo`
writes — videos, ingest, pre-training on a real in-process Ray, features and an index, the API on a real uvicorn —
then the README's blocks marked `demo` run as written: a key, `python -m api` on the demo's model and index, curl on
`/embed`, `/reconstruct` and `/search`. Then the demo's outputs: files that exist and parse, PNGs that decode,
monitor checks from step 0 (the random encoder) to the end, answers from the trained model, no server left."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import videomae

# tests/docs is on sys.path only once one of its modules was collected: this module may run alone.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
from doc_runner import blocks, failure, run_page, workspace  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # the demo runs in the first test's setup


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    with socket.socket() as s:  # the README's server listens on localhost:8000
        if s.connect_ex(("127.0.0.1", 8000)) == 0:
            pytest.fail("port 8000 is taken: the README's server command needs it free")
    work = workspace(tmp_path_factory.mktemp("first-hour"))
    res = subprocess.run([".venv/bin/python", "scripts/demo.py", "--quick", "--out", "runs/demo"], cwd=work,
                         capture_output=True, text=True, timeout=1200, env={**_clean_env(), "PYTHONPATH": str(work)})
    assert res.returncode == 0, f"demo failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    (work / "runs/demo/console.log").write_text(res.stdout + res.stderr)
    after = run_page(blocks("README.md", "demo"), [], work, timeout_s=300)
    assert after.returncode == 0, failure(after)
    return work


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("VIDEOMAE_", "RAY_"))}


def test_readme_commands_after_the_demo_work_as_written(demo):
    embed = json.loads((demo / "embedding.json").read_text())
    assert embed["dim"] == len(embed["embedding"]) > 0
    assert (demo / "reconstruction.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nearest = json.loads((demo / "nearest.json").read_text())["results"]
    assert len(nearest) == 3 and all(r["video_id"] and r["uri"] for r in nearest)


def test_demo_shows_progress_for_every_stage(demo):
    console = (demo / "runs/demo/console.log").read_text()
    for i, stage in enumerate(["videos", "ingest", "pretrain", "extract", "index", "serve", "report"], start=1):
        assert f"[{i}/7] {stage}:" in console, stage
    assert "[train " in console and " eta " in console  # the trainer's step lines, with an ETA, come through
    assert "held-out reconstruction loss" in console and "done in" in console


def test_outputs_exist_and_parse(demo):
    out = demo / "runs/demo"
    summary = json.loads((out / "summary.json").read_text())
    report = (out / "report.md").read_text()
    for name in summary["outputs"].values():
        assert (out / name).exists() if "/" not in name else Path(name).exists(), name
    for picture in ("learning.png", "reconstruction_early.png", "reconstruction_late.png", "loss_curve.png",
                    "reconstruction.png"):
        assert f"({picture})" in report, picture
        with Image.open(out / picture) as im:
            im.load()
            assert im.format == "PNG" and im.width > 100 and im.height > 100, picture
    assert "the prediction alone" in report and "ORIGINAL cube's mean and std" in report  # the legend says it

    total = summary["ingest"]["counts"]["total"]
    assert total["kept"] == total["seen"] > 0 and total["clips"] > 0

    pre = summary["pretrain"]
    assert pre["steps"] > 0 and all(math.isfinite(loss) for _, loss in pre["curve"])
    checks = pre["checks"]
    assert checks[0]["step"] == 0 and checks[-1]["step"] == pre["steps"] and len(checks) >= 3
    for c in checks:  # the same held-out tokens every check: predicting nothing scores the same
        assert math.isclose(c["heldout_loss_zero"], checks[0]["heldout_loss_zero"], rel_tol=1e-4), c
        assert math.isfinite(c["heldout_loss"]) and 0 <= c["probe_top1"] <= 1, c
    assert pre["random"] == {k: checks[0][k] for k in pre["random"]}


def test_api_answers_came_from_the_trained_model(demo):
    out = demo / "runs/demo"
    summary = json.loads((out / "summary.json").read_text())
    model = videomae.load_model(summary["outputs"]["model"])
    assert model.has_decoder
    assert summary["api"]["embed"]["dim"] == model.cfg.embed_dim and summary["api"]["embed"]["clips"] >= 1
    rec = summary["api"]["reconstruct"]
    assert rec["bytes"] == (out / "reconstruction.png").stat().st_size and math.isfinite(rec["loss"])
    assert summary["api"]["search"]["index_size"] == summary["ingest"]["counts"]["total"]["clips"]


def test_no_server_left_running(demo):
    out = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    leftovers = [line for line in out.splitlines() if str(demo) in line and not line.startswith("Z")]
    assert not leftovers, leftovers
