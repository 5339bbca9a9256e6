"""The reproduction's pipeline end to end, shortened (configs/experiments/quick.yaml): sample videos -> two ingests
-> pre-training arms -> fine-tune vs scratch -> k-NN / linear probe -> held-out reconstruction -> report.

Real subprocesses (ingest, Ray Train, evaluation), as `python scripts/experiments.py --quick` runs them. It checks
that every stage runs and writes its outputs, not the numbers (a few steps say nothing about them): docs/results.md
holds the full run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import experiments  # noqa: E402


def test_config_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "configs/experiments/quick.yaml").read_text().replace("from_arm: running_cell",
                                                                              "from_arm: nope"))
    with pytest.raises(SystemExit, match="postpretrain.from_arm: no arm 'nope'"):
        experiments.load_config(bad)
    bad.write_text((ROOT / "configs/experiments/quick.yaml").read_text() + "\nstepz: 3\n")
    with pytest.raises(SystemExit, match="stepz: Extra inputs are not permitted"):
        experiments.load_config(bad)


def test_both_configs_validate_through_the_services_loaders():
    for name in ("full.yaml", "quick.yaml"):
        experiments.validate_stage_configs(experiments.load_config(ROOT / "configs/experiments" / name))


def test_process_watch_sees_a_child_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time\nx = bytearray(64 << 20)\nt = time.time()\n"
                             "while time.time() - t < 1.5: pass"])
    with experiments.ProcessWatch(proc.pid, interval=0.1) as watch:
        proc.wait()
    usage = watch.summary()
    peaks = [r["hwm"] for r in watch.seen.values()]
    assert max(peaks) >= 60  # the 64 MiB buffer is in the peak RSS
    assert usage["all_processes_cpu_s"] >= 0.5  # ~1.5 s of busy loop, less whatever the last sample missed
    assert usage["train_workers_found"] == 0 and usage["train_worker_cpu_s"] is None


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_pipeline_writes_every_output(tmp_path):
    out = tmp_path / "exp"
    publish = tmp_path / "published"
    cmd = [sys.executable, "scripts/experiments.py", "--quick", "--out", str(out), "--publish", str(publish)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]

    results = out / "results"
    summary = json.loads((results / "results.json").read_text())
    cfg = experiments.load_config(ROOT / "configs/experiments/quick.yaml")
    assert {a["arm"] for a in summary["arms"]} == {a.name for a in cfg.arms}
    for arm in summary["arms"]:
        # Every arm's cost columns come from real measurements: FLOPs, wall, the Ray Train worker's CPU and memory.
        assert arm["flops_per_clip_M"] > 0 and arm["wall_s"] > 0
        assert arm["train_cpu_s"] > 0 and arm["peak_rss_mb"] > 50, arm
        assert arm["recon_full"] is not None and arm["knn_top1"] is not None and arm["linear_top1"] is not None
    rc = next(a for a in summary["arms"] if a["arm"] == "running_cell")
    assert rc["flops_vs_none"] < 1  # running cell decodes half the tokens: fewer FLOPs by construction
    assert {f["init"] for f in summary["finetune"].values()} == {"pretrained", "scratch"}
    assert all(f["val_top1"] is not None for f in summary["finetune"].values())
    assert summary["random_init"]["knn_top1"] is not None
    assert summary["recon"]["clips"] >= 1
    for name in ("summary.md", "pretrain_loss.png", "finetune_loss.png", "reconstruction.png", "costs.png"):
        assert (publish / name).stat().st_size > 0, name
        assert (publish / name).read_bytes() == (results / name).read_bytes()
    assert (publish / "reconstruction.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A rerun keeps finished units: nothing is trained again and the report is rewritten from the same results.
    again = subprocess.run(cmd[:-2] + ["--only", "data,pretrain,finetune,report"], cwd=ROOT, capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "$ " not in again.stderr + again.stdout  # no stage command was started
