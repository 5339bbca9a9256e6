"""The real-world zoo (tests/video_zoo.py) uploaded to the real server: every file gets its stated answer (200 with
the frames that decode, windows only where a whole clip exists; or the named 4xx), nothing answers 5xx, and the
server keeps serving. Rotated uploads are embedded upright, as ffmpeg shows them. The same files through feature
extraction (real Ray) and the search CLI's video query give /v1/embed's windows and features, or the same refusal."""

from __future__ import annotations

import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from api_helpers import API_KEY, MAIN_LIMITS, REPO, start_server, stop_server, upload

from videomae import features, listing, reasons
from videomae.search import SearchIndex
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


# ------------------------------------------------------------------------------ feature extraction and search query
# The same files through the corpus job (trainer/extract.py, real Ray) and the search CLI's `--video` query: they read
# as the API does (issue 32), so each file gives /v1/embed's windows and features, or both refuse it for one reason.
WINDOWS = {"clip_len": 8, "frame_stride": 1, "window_stride": 4}  # overlapping windows: chunks share frames


@pytest.fixture(scope="module")
def zoo_features(ray_session, video_zoo, model_dirs, tmp_path_factory) -> dict:
    """The zoo directory extracted with the trained nano (8-frame windows every 4 frames), on Ray."""
    from trainer import extract
    from trainer.extraction.config import load_config

    out = tmp_path_factory.mktemp("zoo_features")
    cfg = load_config(str(REPO / "configs/extract/sample.yaml"),
                      [f"input.path={video_zoo.root}", "input.source=zoo", f"output={out / 'features'}",
                       f"model.source={model_dirs['trained']}", f"windows.window_stride={WINDOWS['window_stride']}",
                       "videos_per_part=8"])  # fmt: skip
    manifest = extract.main(cfg=cfg)
    table = features.read_features(str(out / "features"))
    rejects = pq.read_table(out / "features" / features.REJECTS).to_pylist()
    by_name = {r["uri"].rsplit("/", 1)[-1]: r for r in rejects}
    return {"root": out, "manifest": manifest, "rows": table, "rejects": by_name}


@pytest.fixture(scope="module")
def reading_server(model_dirs, tmp_path_factory):
    """The trained nano with the service's limits raised past every zoo file (a 4K frame, long claims): what these
    tests compare is how a file is read, not the service's limits, which extraction does not have."""
    tmp = tmp_path_factory.mktemp("server-reading")
    limits = {**MAIN_LIMITS, "VIDEOMAE_MAX_WIDTH": "4096", "VIDEOMAE_MAX_HEIGHT": "4096",
              "VIDEOMAE_MAX_PIXELS": str(4096 * 4096), "VIDEOMAE_MAX_FRAMES": "100000", "VIDEOMAE_MAX_CLIPS": "4096",
              "VIDEOMAE_MAX_DURATION_S": "3600"}
    s = start_server(tmp, {"VIDEOMAE_MODEL": str(model_dirs["trained"]), "VIDEOMAE_API_KEYS": API_KEY, **limits})
    yield s
    stop_server(s)


def _rows_of(table, name: str):
    """One file's feature rows, in start order."""
    mine = table.filter(np.asarray(table["video_id"].to_pylist()) == listing.make_video_id("zoo", name))
    return mine.take(np.argsort(mine["start_frame"].to_numpy()))


def test_extraction_rows_are_embeds_windows_on_the_zoo(video_zoo, zoo_features, reading_server):
    """For every zoo file: the extraction's rows are /v1/embed's windows (starts, ends, the rate read) and features
    (the existing parity test's tolerance), or both refuse the file for the same reason with the same words."""
    problems, table = [], {}
    with reading_server.client() as c:
        for name, case in video_zoo.cases.items():
            r = c.post("/v1/embed", files=upload(video_zoo.path(name), name), params=WINDOWS)
            rows, reject = _rows_of(zoo_features["rows"], name), zoo_features["rejects"].get(name)
            if r.status_code == 200:
                body = r.json()
                got = (rows["start_frame"].to_pylist(), rows["end_frame"].to_pylist(), set(rows["fps"].to_pylist()))
                want = ([k["start_frame"] for k in body["clips"]], [k["end_frame"] for k in body["clips"]],
                        {body["fps"]})
                if reject or got != want:
                    problems.append((name, "windows", got, want, reject))
                    continue
                diff = np.abs(features.feature_matrix(rows) - np.asarray([k["embedding"] for k in body["clips"]]))
                table[name] = f"{len(rows)} rows (of {body['num_frames']} frames), features within {diff.max():.1e}"
                if not np.allclose(diff, 0, atol=1e-5, rtol=0):
                    problems.append((name, "features differ by", float(diff.max())))
                if case.frames is None:
                    problems.append((name, "the zoo says this file is refused"))
            else:
                error = r.json()
                table[name] = f"{reject['reason']}: {reject['detail']}" if reject else "-"
                said = reasons.REASONS[reject["reason"]].message(reject["detail"]) if reject else None
                if len(rows) or not reject or (reasons.api_tag(reject["reason"]), said) != (error["error"],
                                                                                            error["detail"]):
                    problems.append((name, "refusals differ", reject, error))
    assert not problems, "\n".join(map(str, problems))
    kept = {n for n, c in video_zoo.cases.items() if c.frames is not None}
    assert {n for n, t in table.items() if " rows " in t} == kept  # every playable file gives its features
    refused = {n: r["reason"] for n, r in zoo_features["rejects"].items()}
    assert refused == {n: c.reason for n, c in video_zoo.cases.items() if c.frames is None}  # ingest's reasons
    print("\nzoo through feature extraction:\n" + "\n".join(f"  {n:28s} {t}" for n, t in table.items()))


def test_search_query_reads_the_zoo_as_extraction(video_zoo, zoo_features, caplog):
    """`trainer/search.py query --video` on each zoo file: the mean of the windows extraction gave the file, or the
    same refusal (the CLI exits 2 naming the reason and its detail)."""
    from trainer import search

    index = SearchIndex.build(str(zoo_features["root"] / "features"), str(zoo_features["root"] / "index"))
    problems = []
    for name in video_zoo.cases:
        rows, reject = _rows_of(zoo_features["rows"], name), zoo_features["rejects"].get(name)
        caplog.clear()
        try:
            query = search.video_query(index, str(video_zoo.path(name)), None, None)
        except SystemExit:
            if not reject or f"--video: {reject['reason']}: {reject['detail']}" not in caplog.text:
                problems.append((name, "refused", caplog.text[-300:], reject))
            continue
        if reject or not np.allclose(query, features.feature_matrix(rows).mean(0), atol=1e-5, rtol=0):
            problems.append((name, "query is not the mean of the rows", reject))
    assert not problems, "\n".join(map(str, problems))
