"""Feature extraction (trainer/extract.py) on real Ray over real videos: the output format, rejects with reasons, a
rerun that skips finished videos, the reference's `.npy` layout, ingest's clip shards as input, and the preprocessing
against the reference script's.

The run itself is the session fixture `feature_corpus` (tests/conftest.py), shared with tests/api/test_api_search.py.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

import videomae
from trainer import extract
from trainer.extraction import chunks, config, runners
from trainer.extraction.collect import Collector
from trainer.extraction.embedder import Embedder
from trainer.extraction.inputs import Video
from videomae import features, listing, reasons, shards
from videomae.transforms import CLIP_TRANSFORMS, eval_clip, reference_tad_clip
from videomae.video import decode_frames, decode_jpegs, probe

pytestmark = pytest.mark.slow


def _video_id(key: str) -> str:
    return listing.make_video_id("corpus", key)  # the manifest's stem is the default source name


def test_features_rows_and_manifest(feature_corpus):
    out = feature_corpus["root"] / "features"
    table = features.read_features(str(out))
    assert table.schema == features.FEATURES_SCHEMA
    assert sorted(set(table["video_id"].to_pylist())) == sorted(_video_id(f"videos/v{i}.mp4") for i in range(4))
    rows = table.to_pylist()
    v0 = sorted((r for r in rows if r["video_id"] == _video_id("videos/v0.mp4")), key=lambda r: r["start_frame"])
    n = probe(feature_corpus["root"] / "videos" / "v0.mp4").num_frames  # 30
    assert [r["start_frame"] for r in v0] == list(range(0, n - 8 + 1, 4))  # nano: 8-frame windows every 4 frames
    assert all(r["end_frame"] == r["start_frame"] + 7 for r in v0)
    assert v0[0]["clip_id"] == listing.make_clip_id(v0[0]["video_id"], 0, 1) and v0[0]["label"] == "move left"
    assert v0[0]["fps"] == pytest.approx(12.0) and len(v0[0]["feature"]) == 96
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"listed": 6, "videos": 4, "windows": len(rows), "rejects": 2,
                                  "by_reason": {"unreadable": 1, "missing": 1}}
    assert manifest["windows"] == {"clip_len": 8, "frame_stride": 1, "window_stride": 4, "transform": "eval",
                                   "img_size": 64}
    assert manifest["model"]["fingerprint"] and manifest["model"]["feature_dim"] == 96
    assert len(list((out / "features").glob("part-*.parquet"))) == 2  # four good videos, two per part
    assert manifest["last_run_first_result_s"] > 0 and manifest["last_run_steady_windows_per_s"] > 0


def test_rejects_have_reasons(feature_corpus):
    rejects = pq.read_table(feature_corpus["root"] / "features" / "rejects.parquet").to_pylist()
    by_uri = {r["uri"].rsplit("/", 1)[-1]: r for r in rejects}
    assert set(by_uri) == {"bad.mp4", "gone.mp4"}
    assert by_uri["bad.mp4"]["reason"] == "unreadable" and by_uri["bad.mp4"]["detail"]
    assert by_uri["gone.mp4"]["reason"] == "missing"
    assert all(r["reason"] in reasons.REASONS for r in rejects)


def test_npy_is_the_reference_layout(feature_corpus):
    out = feature_corpus["root"] / "features"
    table = features.read_features(str(out))
    for i in range(4):
        arr = np.load(out / "npy" / "videos" / f"v{i}.npy")
        mine = table.filter(np.asarray(table["video_id"].to_pylist()) == _video_id(f"videos/v{i}.mp4"))
        order = np.argsort(mine["start_frame"].to_numpy())
        assert arr.dtype == np.float32 and arr.shape == (len(mine), 96)  # (num_windows, C)
        np.testing.assert_array_equal(arr, features.feature_matrix(mine)[order])


def test_rerun_skips_finished_videos(feature_corpus, tmp_path, caplog):
    """One part lost: a rerun extracts only its two videos (and retries the two rejects), to the same rows, and leaves
    the finished part alone."""
    out = tmp_path / "features"
    shutil.copytree(feature_corpus["root"] / "features", out)
    cfg = feature_corpus["cfg"].model_copy(update={"output": str(out)})
    parts = sorted((out / "features").glob("part-*.parquet"))
    lost, kept_before = parts[0], parts[1].stat().st_mtime_ns
    before = pq.read_table(lost)
    lost.unlink()
    with caplog.at_level(logging.INFO, logger="trainer.extract"):
        manifest = extract.main(cfg=cfg)
    assert "6 inputs, 2 already written, 4 to do" in caplog.text
    assert parts[1].stat().st_mtime_ns == kept_before  # the finished part was not touched
    again = pq.read_table(lost)  # the same videos give the same part name and the same rows
    assert again.drop(["feature"]).equals(before.drop(["feature"]))
    np.testing.assert_allclose(features.feature_matrix(again), features.feature_matrix(before), atol=1e-6)
    assert manifest["counts"] == feature_corpus["manifest"]["counts"]


def test_rerun_refuses_other_settings(feature_corpus, tmp_path):
    out = tmp_path / "features"
    shutil.copytree(feature_corpus["root"] / "features", out)
    cfg = feature_corpus["cfg"].model_copy(update={"output": str(out)})
    cfg = cfg.model_copy(update={"windows": cfg.windows.model_copy(update={"window_stride": 2})})
    with pytest.raises(SystemExit):
        extract.main(cfg=cfg)


def test_shard_input_is_one_window_per_stored_clip(feature_corpus, sample_shards, tmp_path):
    """Ingest's clip shards as input (the trainer tests' session dataset, its val split): every stored clip is one
    window, under the shards' video and clip ids and merged label names, and its feature is the model's on the stored
    frames through the eval transform."""
    shards_dir = str(sample_shards)
    cfg = config.load_config(None, [f"input.path={shards_dir}", "input.split=val", f"output={tmp_path / 'f'}",
                                        f"model.source={feature_corpus['root'] / 'model'}", "ray.actors=1"])
    manifest = extract.main(cfg=cfg)
    stored = pa.concat_tables([pq.read_table(f, columns=["video_id", "clip_id", "start_frame", "split", "frames"])
                               for f in shards.clip_files(shards_dir)])
    stored = stored.filter(pc.equal(stored["split"], "val"))
    table = features.read_features(str(tmp_path / "f"))
    assert manifest["input"]["kind"] == "shards" and manifest["counts"]["rejects"] == 0
    assert sorted(table["clip_id"].to_pylist()) == sorted(stored["clip_id"].to_pylist())
    assert set(table["video_id"].to_pylist()) == set(stored["video_id"].to_pylist())
    names = set(shards.read_labels(shards_dir)["names"])
    assert set(table["label"].to_pylist()) <= names and len(set(table["label"].to_pylist())) > 1
    row = table.slice(0, 1).to_pylist()[0]
    clip = stored.filter(pc.equal(stored["clip_id"], row["clip_id"])).to_pylist()[0]
    assert row["start_frame"] == clip["start_frame"]
    model = videomae.load_model(str(feature_corpus["root"] / "model")).eval()
    with torch.inference_mode():
        want = model.forward_pooled(eval_clip(decode_jpegs(clip["frames"]), model.cfg.img_size)[None])[0].numpy()
    np.testing.assert_allclose(np.asarray(row["feature"], np.float32), want, rtol=1e-5, atol=1e-5)


def test_resources_that_could_never_run_are_refused():
    """Actors hold their CPUs for the whole job: with none left for a decode task the job would wait forever."""
    two_cpus = {"CPU": 2.0}
    assert runners.resource_problem(config.RaySection(actors=1), two_cpus) is None
    problem = runners.resource_problem(config.RaySection(actors=2), two_cpus)
    assert problem and "ray.cpus_per_actor=0.5" in problem
    assert runners.resource_problem(config.RaySection(actors=2, cpus_per_actor=0.5), two_cpus) is None
    assert "GPUs" in runners.resource_problem(config.RaySection(actors=2), {"CPU": 8.0, "GPU": 1.0})


# ------------------------------------------------------------------------------------- the reference's preprocessing
def _reference_tad_transform(frames: np.ndarray, size: int = 224) -> torch.Tensor:
    """Written from OpenGVLab/VideoMAEv2 extract_tad_feature.py: `ToFloatTensorInZeroOne` (permute to (C, T, H, W),
    float, / 255) then `Resize((224, 224))`, which calls F.interpolate on the 4-D clip (C as the batch, T as
    channels) with size=(224, 224), bilinear, align_corners=False; no crop, no normalisation."""
    vid = torch.from_numpy(frames).permute(3, 0, 1, 2).to(torch.float32) / 255
    return F.interpolate(vid, size=(size, size), scale_factor=None, mode="bilinear", align_corners=False)


def _reference_windows(num_frames: int) -> list[list[int]]:
    """The reference's THUMOS14 windows: `range(0, num_frames - 15, 4)`, frames `np.arange(start, start + 16)`."""
    return [list(range(s, s + 16)) for s in range(0, num_frames - 15, 4)]


def test_window_plan_is_the_references():
    win = chunks.Windows(16, 1, 4, "reference_tad", 224, 8)
    for n in (16, 17, 30, 100):
        assert [idx for _, idx in chunks.window_plan(n, win)] == _reference_windows(n)


def test_reference_tad_transform_matches_the_reference(feature_corpus):
    frames = decode_frames(feature_corpus["root"] / "videos" / "v1.mp4", list(range(16)))
    assert torch.equal(reference_tad_clip(frames, 224), _reference_tad_transform(frames))
    assert CLIP_TRANSFORMS["reference_tad"] is reference_tad_clip and CLIP_TRANSFORMS["eval"] is eval_clip


@pytest.mark.parametrize("transform", sorted(CLIP_TRANSFORMS))
def test_chunks_equal_transforming_each_window(feature_corpus, transform):
    """Frames transformed once and cut into overlapping windows = every window transformed on its own."""
    path = feature_corpus["root"] / "videos" / "v2.mp4"
    win = chunks.Windows(16, 1, 4, transform, 64, 3)
    video = Video("v2", str(path), "v2.mp4")
    rows = list(chunks.video_chunks(video, win))
    n = probe(path).num_frames
    expected = _reference_windows(n)
    got = []
    for row in rows:
        p = pickle.loads(row["payload"])
        frames = torch.from_numpy(p["frames"])
        got += [frames[:, torch.from_numpy(ix).long()] for ix in p["local"]]
    assert len(got) == len(expected) and len(rows) == -(-len(expected) // 3)
    for clip, idx in zip(got, expected, strict=True):
        want = CLIP_TRANSFORMS[transform](decode_frames(path, idx), 64)
        assert torch.equal(clip, want)
    if transform == "reference_tad":
        assert torch.equal(got[0], _reference_tad_transform(decode_frames(path, expected[0]), 64))


# ------------------------------------------------------------------------------------- reading as the API reads
def test_a_lying_header_gives_the_windows_that_decode_in_any_arrival_order(feature_corpus, video_zoo, tmp_path):
    """An AVI claiming 444 frames holds 20: the windows are planned from the claim until a read finds frames
    missing, then kept within the 20 (tests/api/test_api_zoo.py compares them with /v1/embed). Each chunk row says
    how many chunks were planned when the next one was made, the last one exactly; the collector completes the video
    whatever order the rows come back in."""
    win = chunks.Windows(8, 1, 4, "eval", 64, 2)
    video = Video(listing.make_video_id("zoo", "avi"), str(video_zoo.path("header_claims_444.avi")), "avi")
    rows = list(chunks.video_chunks(video, win))
    assert [r["chunk"] for r in rows] == [0, 1] and rows[0]["num_chunks"] > rows[1]["num_chunks"] == 2
    embedder = Embedder(str(feature_corpus["root"] / "model"), None, batch_size=4)
    cfg = feature_corpus["cfg"].model_copy(update={"output": str(tmp_path / "f")})
    collector = Collector(cfg, [video])
    for row in reversed(embedder.rows(rows)):
        collector.add(row)
    collector.check_complete()
    table = features.read_features(str(tmp_path / "f"))
    assert table["start_frame"].to_pylist() == [0, 4, 8, 12] and table["end_frame"].to_pylist()[-1] == 19
    assert collector.rejects == []


def test_a_window_from_a_start_frame_ends_within_the_frames(feature_corpus):
    """The search CLI's `--start-frame`: the one window from there, whole; past the last whole window, refused
    saying where the last one starts."""
    path = feature_corpus["root"] / "videos" / "v1.mp4"  # 30 frames
    win = chunks.Windows(8, 1, 4, "eval", 64, 8)
    video = Video("v1", str(path), "v1.mp4")
    (row,) = chunks.video_chunks(video, win, start=22)
    assert pickle.loads(row["payload"])["starts"] == [22] and not row["reason"]
    (row,) = chunks.video_chunks(video, win, start=23)
    assert row["reason"] == reasons.NO_FRAMES and "start at most 22" in row["detail"]


def test_a_video_without_a_whole_window_is_refused_as_the_api_refuses_it(feature_corpus):
    """Windows longer than the video: no window padded with a repeated last frame; too_short, with the frames that
    decode, in the words of the API's 422."""
    path = feature_corpus["root"] / "videos" / "v1.mp4"  # 30 frames
    (row,) = chunks.video_chunks(Video("v1", str(path), "v1.mp4"), chunks.Windows(16, 2, 4, "eval", 64, 8))
    assert row["reason"] == reasons.TOO_SHORT
    assert row["detail"] == "30 frames decode; one clip of 16 frames 2 apart needs 31"
