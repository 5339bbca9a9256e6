"""bench/realistic_videos.py and bench/loader.py cannot rot: two Kinetics-like videos (H.264, short side 320, 10 s,
one GOP), their shards, and every arm of the loader benchmark (reference decode per sample, ours on real Ray Data and
in-process, the bare JPEG limit) on a few views, through the JSON it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from videomae.video import jpegbox

ROOT = Path(__file__).resolve().parents[2]


def test_realistic_inputs_and_every_loader_arm(tmp_path):
    out = tmp_path / "videos"
    made = subprocess.run([sys.executable, "bench/realistic_videos.py", str(out), "--kinds", "kinetics",
                           "--videos", "2", "--clips-per-video", "2"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    inputs = json.loads((out / "inputs.json").read_text())
    video = Path(inputs["kinetics"]["videos"][0])
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                            "stream=codec_name,height,nb_frames", "-of", "json", str(video)],
                           capture_output=True, text=True, check=True)
    stream = json.loads(probe.stdout)["streams"][0]
    assert stream["codec_name"] == "h264" and stream["height"] == 320 and int(stream["nb_frames"]) == 250

    report_path = tmp_path / "loader.json"
    run = subprocess.run([sys.executable, "bench/loader.py", "--inputs", str(out), "--num-sample", "2",
                          "--views", "16", "--batch", "2", "--buffer-mb", "32", "--json", str(report_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    arms = {r["arm"]: r for r in report["rows"]}
    whole = {"ours in-process, whole frames"} if jpegbox.available() else set()  # box decoding's baseline
    assert set(arms) == {"limit", "breakdown", "reference", "ours in-process", "ours (Ray Data)"} | whole
    for arm in ("limit", "reference", "ours in-process", "ours (Ray Data)", *whole):
        assert arms[arm]["clips_per_core_s"] > 0 and arms[arm]["views"] >= 16, arms[arm]
    # The reference reads video packets from a keyframe; the shards read the clip's 16 JPEGs.
    assert arms["reference"]["bytes_per_clip"] > 0 and arms["ours (Ray Data)"]["bytes_per_clip"] > 0
    assert any("MapBatches" in role for role in arms["ours (Ray Data)"]["memory_mb"])
    (summary,) = report["summary"]
    assert summary["num_sample"] == 2 and summary["ours_vs_reference"] > 0 and 0 < summary["ours_vs_limit"]
    assert summary["breakdown_ms"]["jpeg_ms"] > 0 and summary["breakdown_ms"]["jpeg_box_ms"] > 0
    assert "ours/limit" in run.stdout
    # Where the Ray arm's CPU went, by part: the decode tasks did work in the window, and the parts add up to the
    # window's CPU (the Watch's own sampling taken out of both).
    ray_arm = arms["ours (Ray Data)"]
    parts = ray_arm["cpu_ms_per_view"]
    assert parts["decode tasks"] > 0 and set(parts) <= {"decode tasks", "consumer", "split coordinator",
                                                        "Ray's daemons and actors"}
    total = sum(parts.values()) * ray_arm["views"] / 1e3
    assert abs(total - ray_arm["cpu_s"]) <= 0.25 * ray_arm["cpu_s"] + 0.5, (total, ray_arm["cpu_s"])
    assert ray_arm["watch_cpu_s"] >= 0 and ray_arm["settled_s"] >= 0
    assert "decode tasks ms/view" in run.stdout
