"""The real-world zoo (tests/video_zoo.py) uploaded to the real server: every file gets its stated answer (200 with
the frames that decode, windows only where a whole clip exists; or the named 4xx), nothing answers 5xx, and the
server keeps serving. Rotated uploads are embedded upright, as ffmpeg shows them."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from api_helpers import upload

from videomae.transforms import eval_clip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def answers(server, video_zoo) -> dict[str, dict]:
    """Each zoo file posted once to /v1/embed and once to /v1/reconstruct (format=json, frame_stride=1: the same
    8-frame clip as embed needs)."""
    out = {}
    with server.client() as c:
        for name in video_zoo.cases:
            data = upload(video_zoo.path(name), name)
            params = {"format": "json", "frame_stride": 1}
            out[name] = {"embed": c.post("/v1/embed", files=data),
                         "reconstruct": c.post("/v1/reconstruct", files=data, params=params)}
    return out


def test_every_upload_gets_its_stated_answer(video_zoo, answers, server):
    problems = []
    for name, case in video_zoo.cases.items():
        for endpoint, r in answers[name].items():
            if r.status_code >= 500:
                problems.append((name, endpoint, r.status_code, r.text))
            elif case.frames is None:
                status, tag = case.api
                if (r.status_code, r.json().get("error")) != (status, tag):
                    problems.append((name, endpoint, f"expected {status} {tag}", r.status_code, r.text))
            elif r.status_code != 200:
                problems.append((name, endpoint, "expected 200", r.status_code, r.text))
        body = answers[name]["embed"].json() if answers[name]["embed"].status_code == 200 else None
        if case.frames is not None and body:
            n = video_zoo.expected_frames[name]
            want = {"num_frames": n, "header_num_frames": case.header_frames or n,
                    "frames_counted": case.header_frames is not None,
                    "rotation": case.facts.get("rotation", 0), "stream_index": case.facts.get("stream_index", 0)}
            got = {k: body[k] for k in want}
            starts = [cl["start_frame"] for cl in body["clips"]]
            if got != want or starts != list(range(0, n - 8 + 1, 8)) or body["clips"][-1]["end_frame"] > n - 1:
                problems.append((name, want, got, starts))
    assert not problems, "\n".join(map(str, problems))
    with server.client() as c:  # still serving
        assert c.get("/readyz").status_code == 200
        assert c.post("/v1/embed", files=upload(video_zoo.path("mjpeg.avi"))).status_code == 200
    assert server.alive()


def test_rejections_say_why(answers):
    detail = {name: a["embed"].json()["detail"] for name, a in answers.items() if a["embed"].status_code != 200}
    assert "5 frames decode; one clip of 8 frames 1 apart needs 8" in detail["short_0.2s.mp4"]
    assert "3840x2160 exceeds the limit (640x640, 307200 pixels)" in detail["frame_4k.mp4"]
    assert "audio only" in detail["audio_only.m4a"] and "cover art" in detail["cover_art_only.m4a"]


@pytest.mark.parametrize("name", ["rotate_90.mp4", "rotate_270.mp4"])
def test_rotated_uploads_are_embedded_upright(video_zoo, answers, trained_model, name):
    """The served feature of each window is the model's feature of ffmpeg's own (autorotated) frames."""
    raw = subprocess.run(["ffmpeg", "-v", "quiet", "-i", str(video_zoo.path(name)), "-f", "rawvideo", "-pix_fmt",
                          "rgb24", "-"], capture_output=True, check=True).stdout  # fmt: skip
    shown = np.frombuffer(raw, np.uint8).reshape(-1, 64, 48, 3)  # portrait, as a player shows it
    body = answers[name]["embed"].json()
    clips = torch.stack([eval_clip(shown[c["start_frame"]:c["start_frame"] + 8], 64) for c in body["clips"]])
    with torch.inference_mode():
        expected = trained_model.forward_pooled(clips)
    got = torch.tensor([c["embedding"] for c in body["clips"]])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    sideways = torch.stack([eval_clip(np.ascontiguousarray(np.rot90(shown[c["start_frame"]:c["start_frame"] + 8], 1,
                                                                    axes=(1, 2))), 64) for c in body["clips"]])
    with torch.inference_mode():
        assert not torch.allclose(got, trained_model.forward_pooled(sideways), atol=1e-3)
