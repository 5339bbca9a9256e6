"""videomae.video on real files made by ffmpeg: probe, both decoders, transforms."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from videomae import video
from videomae.video import decoding


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "t.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=s=96x64:r=10:d=2", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", str(path)], check=True)  # fmt: skip
    return path


def test_probe_reports_stream_facts(clip):
    info = video.probe(clip)
    assert (info.width, info.height, info.num_frames, info.codec) == (96, 64, 20, "h264")
    assert info.fps == pytest.approx(10.0) and info.duration_s == pytest.approx(2.0, abs=0.05)
    assert video.probe(clip.read_bytes()) == info  # bytes go through a temp file


def test_probe_rejects_with_reason(tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(video.VideoError) as e:
        video.probe(bad)
    assert e.value.reason == "unreadable"
    audio = tmp_path / "a.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", str(audio)], check=True)
    with pytest.raises(video.VideoError) as e:
        video.probe(audio)
    assert e.value.reason == "no_video_stream"


@pytest.mark.skipif(decoding.decord is None, reason="decord ships x86_64 wheels only; PyAV is tested instead")
def test_decord_and_pyav_agree(clip):
    idx = [0, 7, 7, 19, 3]
    a = video.decode_frames(clip, idx, backend="decord")
    b = video.decode_frames(clip, idx, backend="pyav")
    assert a.shape == b.shape == (5, 64, 96, 3) and a.dtype == np.uint8
    # Same decoder underneath (libavcodec), colour conversion may differ by rounding only.
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3
    assert np.array_equal(a[1], a[2])
    assert not np.array_equal(a[0], a[3])


def test_decode_beyond_the_end_is_a_decode_error(clip):
    for backend in ("auto", "pyav"):
        with pytest.raises(video.VideoError) as e:
            video.decode_frames(clip, [0, 25], backend=backend)
        assert e.value.reason == "decode_error"


def test_count_frames_and_index_helpers(clip):
    assert video.count_frames(clip) == 20
    assert video.frame_indices_at_times([0, 0.5, 1.99, 2.5], fps=10, num_frames=20) == [0, 5, 19]
    assert video.clip_indices(start=3, clip_len=4, stride=2) == [3, 5, 7, 9]


def test_resize_short_side_and_jpeg_round_trip():
    frames = np.random.default_rng(0).integers(0, 255, (2, 90, 160, 3), np.uint8)
    out = video.resize_frames_short_side(frames, 64)
    assert out.shape == (2, 64, 114, 3)
    assert video.resize_frames_short_side(frames[0], 45).shape == (45, 80, 3)
    assert video.resize_frames_short_side(frames.transpose(0, 2, 1, 3), 64).shape == (2, 114, 64, 3)
    smooth = np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 1, 3))
    data = video.encode_jpeg(smooth, 95)
    assert data == video.encode_jpeg(smooth, 95)  # reproducible bytes
    back = video.decode_jpeg(data)
    assert back.shape == smooth.shape and np.abs(back.astype(int) - smooth).mean() < 2
