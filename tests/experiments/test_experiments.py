"""The data-efficiency experiment end to end, shortened (configs/experiments/quick.yaml): generated videos -> ingest
-> pre-training arms -> fine-tuning from each and from scratch -> probes of every encoder and of a random one ->
held-out reconstruction -> report -> published results, then scripts/check_results.py on a fresh set.

Real subprocesses (ingest, Ray Train, evaluation), as `python scripts/experiments.py --quick` runs them. It checks
that every stage runs and writes its outputs and the results.json schema, not the numbers (a few steps say nothing
about them): docs/results.md holds the full run.
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
    quick = (ROOT / "configs/experiments/quick.yaml").read_text()
    bad.write_text(quick.replace("from_arms: [running_cell]", "from_arms: [nope]"))
    with pytest.raises(SystemExit, match="finetune.from_arms: no arm 'nope'"):
        experiments.load_config(bad)
    bad.write_text(quick + "\nstepz: 3\n")
    with pytest.raises(SystemExit, match="stepz: Extra inputs are not permitted"):
        experiments.load_config(bad)


def test_both_configs_validate_through_the_services_loaders():
    for name in ("full.yaml", "quick.yaml"):
        experiments.validate_stage_configs(experiments.load_config(ROOT / "configs/experiments" / name))


def test_process_watch_sees_a_child_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time\nx = bytearray(64 << 20)\n"
                             "while time.process_time() < 1.5: pass"])  # 1.5 s of CPU, however busy the machine
    with experiments.ProcessWatch(proc.pid, interval=0.1) as watch:
        proc.wait()
    usage = watch.summary()
    peaks = [r["hwm"] for r in watch.seen.values()]
    assert max(peaks) >= 60  # the 64 MiB buffer is in the peak RSS
    assert usage["all_processes_cpu_s"] >= 0.5  # 1.5 s of CPU, less whatever the last sample missed
    assert usage["train_workers_found"] == 0 and usage["train_worker_cpu_s"] is None


def _per_seed(values, n):
    return isinstance(values, list) and len(values) == n and all(isinstance(v, (int, float)) for v in values)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_quick_pipeline_writes_every_output(tmp_path):
    out = tmp_path / "exp"
    publish = tmp_path / "published"
    cmd = [sys.executable, "scripts/experiments.py", "--quick", "--out", str(out), "--publish", str(publish)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]

    results = out / "results"
    full = json.loads((results / "results.json").read_text())
    s = full["summary"]
    cfg = experiments.load_config(ROOT / "configs/experiments/quick.yaml")
    # The published schema (docs/results.md, scripts/check_results.py): one value per seed, percent.
    assert 0 < s["chance"] < 100
    assert _per_seed(s["finetune_top1"]["pretrained"], len(cfg.finetune.seeds))
    assert _per_seed(s["finetune_top1"]["scratch"], len(cfg.finetune.seeds))
    assert _per_seed(s["linear_top1"]["pretrained"], len(cfg.arm("running_cell").seeds))
    assert _per_seed(s["linear_top1"]["random"], len(cfg.probes.random_seeds))
    assert set(s["arms"]) == {a.name for a in cfg.arms}
    for arm in s["arms"].values():  # costs from real measurements: FLOPs, the Ray Train worker's CPU
        assert arm["flops_per_clip"] > 0 and all(c and c > 0 for c in arm["train_cpu_s"])
        assert all(r is not None for r in arm["heldout_recon"])
    assert s["dual_masking"]["flops_ratio"] < 1  # running cell decodes half the tokens: fewer FLOPs by construction
    assert [p["arm"] for p in s["curve"]] == ["none (random init)", "running_cell"]
    assert s["curve"][0]["epochs"] == 0 < s["curve"][1]["epochs"]
    # The learning-health checks of each pre-training run reached the report.
    assert all(rec["health"] and "heldout_loss" in rec["health"][-1] for rec in full["pretrain"].values())
    for name in ("results.json", "summary.md", "pretrain.png", "curve.png", "finetune.png", "reconstruction.png"):
        assert (publish / name).stat().st_size > 0, name
    assert (publish / "reconstruction.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import videomae

    model = videomae.load_model(str(publish / "model"))
    assert model.has_decoder and model.cfg.patch_size == 8

    # A rerun keeps finished units: nothing is trained again and the report is rewritten from the same results.
    again = subprocess.run(cmd[:-2] + ["--only", "data,pretrain,finetune,report"], cwd=ROOT, capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "$ " not in again.stderr + again.stdout  # no stage command was started

    # Anyone can re-check the published encoder on videos nobody has seen (tiny here).
    check = subprocess.run([sys.executable, "scripts/check_results.py", "--seed", "5", "--results", str(publish),
                            "--train-per-class", "2", "--val-per-class", "1"], cwd=ROOT, capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr[-3000:]
    last = check.stdout.strip().splitlines()[-1]
    assert last.startswith("linear top-1: published ") and last.endswith(" %") and ", random " in last
