"""The real-world zoo (tests/video_zoo.py) through the ingest CLI on the session's Ray: every file meets its stated
outcome (kept with the frames that decode, the header's claim beside them; or rejected with its reason), every input
is accounted for once, and a rerun writes identical rows."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from ingest.__main__ import main as ingest_main
from videomae import shards, video

pytestmark = pytest.mark.slow

SETTINGS = {"clips": {"num_frames": 8, "stride": 1, "short_side": 32, "clips_per_video": 2},  # one clip needs 8
            "ray": {"videos_per_part": 8}}  # fmt: skip


def _rows(out: Path) -> dict:
    t = {n: pq.read_table(out / f"{n}.parquet").to_pylist() for n in ("videos", "duplicates", "rejects")}
    t["clips"] = shards.read_clips(str(out)).to_pylist()
    return t


@pytest.fixture(scope="module")
def zoo_runs(video_zoo, ray_session, tmp_path_factory) -> list[Path]:
    """Two runs of `python -m ingest --config ...` (its main, in this process, on the session's Ray)."""
    d = tmp_path_factory.mktemp("zoo-ingest")
    outs = []
    for name in ("first", "again"):
        config = d / f"{name}.yaml"
        body = {"output": str(d / name), "sources": [{"name": "zoo", "kind": "unlabeled", "path": str(video_zoo.root)}],
                **SETTINGS}  # fmt: skip
        config.write_text(yaml.safe_dump(body))
        assert ingest_main(["--config", str(config), "--json"]) == 0
        outs.append(d / name)
    return outs


def test_every_file_meets_its_stated_outcome(video_zoo, zoo_runs):
    t = _rows(zoo_runs[0])
    videos = {Path(r["uri"]).name: r for r in t["videos"]}
    rejects = {Path(r["uri"]).name: r for r in t["rejects"]}
    assert not t["duplicates"], t["duplicates"]  # every zoo file has its own content: nothing is merged
    clips_per_video: dict[str, int] = {}
    for c in t["clips"]:
        clips_per_video[c["video_id"]] = clips_per_video.get(c["video_id"], 0) + 1
    problems = []
    for name, case in video_zoo.cases.items():
        if case.frames is None:
            got = rejects.get(name)
            if not got or got["reason"] != case.reason or case.detail not in got["detail"]:
                problems.append((name, f"expected rejected {case.reason} ({case.detail})", got))
            continue
        v = videos.get(name)
        frames = video_zoo.expected_frames[name]
        claim = case.header_frames if case.header_frames is not None else frames
        want = {"num_frames": frames, "header_num_frames": claim, "frames_counted": case.header_frames is not None,
                **case.facts}  # fmt: skip
        got = {k: v[k] for k in want} if v else rejects.get(name)
        if got != want or not clips_per_video.get(v["video_id"]):
            problems.append((name, want, got))
        elif v["fps"] > 0 and abs(v["duration_s"] - frames / v["fps"]) > 1e-3:
            problems.append((name, "duration_s = num_frames / fps", v))
    assert not problems, "\n".join(map(str, problems))


def test_accounting_and_rerun(video_zoo, zoo_runs):
    first, again = (_rows(out) for out in zoo_runs)
    n = len(video_zoo.cases)
    assert len(first["videos"]) + len(first["duplicates"]) + len(first["rejects"]) == n
    assert len({r["uri"] for r in first["videos"] + first["duplicates"] + first["rejects"]}) == n
    manifest = shards.read_json(str(zoo_runs[0]), "manifest.json")["counts"]["total"]
    assert (manifest["seen"], manifest["kept"], manifest["clips"]) == (n, len(first["videos"]), len(first["clips"]))
    assert again == first  # same ids, same rows, same frame bytes


def test_rotated_frames_are_stored_upright(video_zoo, zoo_runs):
    """Clip frames of the sideways-stored file match ffmpeg's own (autorotated) frames, not the stored ones turned
    the other way."""
    t = _rows(zoo_runs[0])
    for name in ("rotate_90.mp4", "rotate_270.mp4"):
        vid = next(v for v in t["videos"] if Path(v["uri"]).name == name)
        clip = next(c for c in t["clips"] if c["video_id"] == vid["video_id"])
        stored = video.decode_jpegs(clip["frames"]).astype(int)  # (8, H, W, 3) upright, short side 32
        raw = subprocess.run(["ffmpeg", "-v", "quiet", "-i", str(video_zoo.path(name)), "-f", "rawvideo", "-pix_fmt",
                              "rgb24", "-"], capture_output=True, check=True).stdout  # fmt: skip
        shown = np.frombuffer(raw, np.uint8).reshape(-1, 64, 48, 3)[clip["start_frame"]:][:8]
        # What ingest makes of ffmpeg's frames: short side 32, JPEG at quality 90.
        shown = video.decode_jpegs([video.encode_jpeg(f, 90) for f in video.resize_frames_short_side(shown, 32)])
        assert stored.shape == shown.shape == (8, 42, 32, 3)
        same, turned = np.abs(stored - shown).mean(), np.abs(stored - shown[:, ::-1, ::-1].astype(int)).mean()
        assert same < 0.5 and turned > 50, (name, same, turned)
