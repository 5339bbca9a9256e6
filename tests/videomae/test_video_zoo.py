"""videomae.video on the real-world zoo (tests/video_zoo.py): every playable file decodes to the frames ffmpeg's own
player path gives (count and pixels, upright, from the stream the library picks); lengths are what decodes."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from videomae import video


def ffmpeg_frames(path, info: video.VideoInfo) -> np.ndarray:
    """Every frame ffmpeg decodes from the stream, as it shows them (autorotate, its default), none duplicated or
    dropped (-vsync 0): uint8 (T, H, W, 3)."""
    raw = subprocess.run(["ffmpeg", "-v", "quiet", "-i", str(path), "-map", f"0:{info.stream_index}", "-vsync", "0",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True,
                         timeout=60).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, info.height, info.width, 3)


def test_every_kept_file_decodes_as_ffmpeg_shows_it(video_zoo):
    for name, expected in video_zoo.expected_frames.items():
        path = video_zoo.path(name)
        info = video.probe(path)
        ref = ffmpeg_frames(path, info)
        assert video.count_frames(path) == len(ref) == expected, name
        for backend in ("auto", "pyav"):
            got = video.decode_frames(path, list(range(expected)), backend=backend, rotation=info.rotation)
            assert got.shape == ref.shape, (name, backend, got.shape, ref.shape)
            diff = np.abs(got.astype(int) - ref)
            if name == "yuv420p10.mp4":  # 10-bit -> 8-bit RGB: the two swscale builds upsample chroma differently
                assert np.median(diff) == 0 and diff.mean() < 8, (name, backend, diff.mean())
            else:
                assert diff.mean() < 0.5, (name, backend, diff.mean())


def test_lengths_are_what_decodes(video_zoo):
    """verify_length: the claim where its last frame decodes, else the count; a corrupt stretch the check does not
    cross is counted by the first FrameReader read that fails on it."""
    for name, expected in video_zoo.expected_frames.items():
        case = video_zoo.cases[name]
        path = video_zoo.path(name)
        info = video.probe(path)
        if case.header_frames is not None:
            assert info.num_frames == case.header_frames, name  # the file does claim more than it holds
        length = video.verify_length(path, info)
        if name == "corrupt_middle.mp4":  # the claimed last frame decodes: the claim stands until a read fails
            assert (length.num_frames, length.counted) == (case.header_frames, False)
            reader = video.FrameReader(path, length, rotation=info.rotation)
            reader.at_times([k * 0.5 for k in range(4)])  # sample times cross the stretch
            length = reader.length
        assert length.num_frames == expected and length.counted == (case.header_frames is not None), (name, length)
    reader = video.FrameReader(video_zoo.path("header_claims_444.avi"), video.Length(444, 17.64, 25.0))
    assert reader.read([100]) is None and reader.num_frames == 20 and reader.read([19]).shape == (1, 48, 64, 3)


@pytest.mark.parametrize("name", ["rotate_90.mp4", "rotate_270.mp4"])
def test_rotation_is_applied_and_reported(video_zoo, name):
    info = video.probe(video_zoo.path(name))
    assert (info.rotation, info.width, info.height) == (video_zoo.cases[name].facts["rotation"], 48, 64)
    assert video.probe(video_zoo.path(name), backend="ffprobe") == info  # both probes read the display matrix


def test_stream_choice_and_rejects(video_zoo):
    info = video.probe(video_zoo.path("two_streams.mp4"))
    assert (info.stream_index, info.video_streams, info.width, info.height) == (1, 2, 32, 24)
    assert video.probe(video_zoo.path("two_streams.mp4"), backend="ffprobe") == info
    for name, case in video_zoo.cases.items():
        if case.reason == "no_video_stream":
            with pytest.raises(video.VideoError) as e:
                video.probe(video_zoo.path(name))
            assert e.value.reason == "no_video_stream" and case.detail in e.value.detail, (name, e.value)
