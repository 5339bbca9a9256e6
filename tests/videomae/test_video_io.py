"""videomae.video's hardening: what it refuses to read, error reasons without paths, probe backends that agree,
one clip-index helper, and eval_clip's frame-by-frame resize. Real files made by ffmpeg (~2 s for the set)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from videomae import video
from videomae.transforms import center_crop, eval_clip, normalize, resize_clip_short_side, to_tensor
from videomae.video import probing, safety


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-v", "error", *args], check=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("server-side-secret-dir")  # a name that must never show up in an error detail
    src = ["-f", "lavfi", "-i", "testsrc2=s=96x64:r=10:d=2"]
    f = {name: d / name for name in ("t.mp4", "t.webm", "t.avi", "t.ts", "t.h264", "fast.mp4")}
    ffmpeg(*src, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(f["t.mp4"]))
    ffmpeg(*src, "-c:v", "libvpx", "-b:v", "200k", str(f["t.webm"]))
    ffmpeg(*src, "-c:v", "mjpeg", str(f["t.avi"]))
    ffmpeg(*src, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(f["t.ts"]))
    ffmpeg(*src, "-c:v", "libx264", "-pix_fmt", "yuv420p", str(f["t.h264"]))  # raw stream: no count, no duration
    ffmpeg(*src, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(f["fast.mp4"]))
    data = f["fast.mp4"].read_bytes()
    f["cut.mp4"] = d / "cut.mp4"  # header intact, stream cut: probes, then fails to decode
    f["cut.mp4"].write_bytes(data[: len(data) // 2])
    f["junk.mp4"] = d / "junk.mp4"
    f["junk.mp4"].write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    # Text formats that make libavformat read other files: each names a real video on this machine.
    f["hls"] = d / "upload.mp4"
    f["hls"].write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nfile://{f['t.ts']}\n#EXT-X-ENDLIST\n")
    f["ffconcat"] = d / "list.mp4"
    f["ffconcat"].write_text(f"ffconcat version 1.0\nfile {f['t.mp4'].name}\n")
    f["sdp"] = d / "session.mp4"  # the sdp demuxer looks for a c= line anywhere, no v=0 needed first
    f["sdp"].write_text("o=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 5004 RTP/AVP 96\n")
    return f


# ---------------------------------------------------------------------------------------------- sniffing


def test_sniff_container_by_content(files):
    kinds = {name: video.sniff_file(files[name]) for name in ("t.mp4", "t.webm", "t.avi", "t.ts", "t.h264")}
    assert kinds == {"t.mp4": "mp4", "t.webm": "matroska", "t.avi": "avi", "t.ts": "mpegts", "t.h264": None}
    for name in ("hls", "ffconcat", "sdp", "junk.mp4"):
        assert video.sniff_file(files[name]) is None, name
    assert video.sniff_container(b"") is None
    assert video.sniff_container(b"\x47short") is None  # one sync byte is not a transport stream
    assert video.sniff_container(b"\x47" + bytes(187) + b"\x47") == "mpegts"
    assert video.sniff_container(b"RIFF\0\0\0\0AVI LIST") == "avi"


# ---------------------------------------------------------------------------------------------- refusing


@pytest.mark.parametrize(("name", "what"), [("hls", "HLS playlist"), ("ffconcat", "ffconcat list"),
                                            ("sdp", "not an allowed video container")])  # fmt: skip
def test_referencing_formats_are_refused(files, name, what):
    """Unrestricted libavformat opens the HLS playlist and reports the server-side file's stream; the library
    refuses it (and the others) in probe, decode and count, with reason `unreadable` and a detail that says so."""
    calls = [lambda p: video.probe(p), lambda p: video.probe(p, backend="ffprobe"),
             lambda p: video.probe(p.read_bytes()), lambda p: video.decode_frames(p, [0]),
             lambda p: video.decode_frames(p, [0], backend="pyav"), lambda p: video.count_frames(p)]  # fmt: skip
    for call in calls:
        with pytest.raises(video.VideoError) as e:
            call(files[name])
        assert e.value.reason == "unreadable" and what in e.value.detail, e.value
        assert "secret" not in str(e.value)


def test_demuxer_allow_list_alone_refuses_hls(files):
    """Defence in depth: past the first-bytes check, PyAV and ffprobe are opened with an allow-list of demuxers.
    (Named .m3u8: recent libavformat also refuses HLS content under other extensions on its own.)"""
    playlist = files["hls"].with_name("list.m3u8")
    playlist.write_bytes(files["hls"].read_bytes())
    with pytest.raises(video.VideoError, match="not an allowed video container"):
        with safety.open_av(str(playlist)):
            pass
    with pytest.raises(video.VideoError, match="not an allowed video container"):
        probing._probe_ffprobe(str(playlist), count_packets=False)


def test_paths_are_file_names_not_protocols(files, tmp_path, monkeypatch):
    """A relative name that looks like a protocol ("concat:", "subfile,") is read as a local file name."""
    monkeypatch.chdir(tmp_path)
    weird = tmp_path / "concat:t.mp4"
    weird.write_bytes(files["t.mp4"].read_bytes())
    expected = video.probe(files["t.mp4"])
    assert video.probe("concat:t.mp4") == expected
    assert video.probe("concat:t.mp4", backend="ffprobe") == expected
    assert video.decode_frames("concat:t.mp4", [3], backend="pyav").shape == (1, 64, 96, 3)


# ---------------------------------------------------------------------------------------------- errors


def test_error_reasons_and_no_paths_in_details(files, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = [
        (lambda: video.probe(empty), "empty"),
        (lambda: video.probe(files["junk.mp4"]), "unreadable"),
        (lambda: video.probe(files["junk.mp4"], backend="ffprobe"), "unreadable"),  # ffprobe quotes the path
        (lambda: video.probe(tmp_path / "missing.mp4"), "unreadable"),
        (lambda: video.decode_frames(files["junk.mp4"], [0]), "unreadable"),
        (lambda: video.decode_frames(files["cut.mp4"], [0, 19]), "decode_error"),
        (lambda: video.decode_frames(files["cut.mp4"], [0, 19], backend="pyav"), "decode_error"),
        (lambda: video.count_frames(files["junk.mp4"]), "unreadable"),
    ]
    for call, reason in cases:
        with pytest.raises(video.VideoError) as e:
            call()
        assert e.value.reason == reason, (reason, e.value)
        assert "secret" not in e.value.detail and str(tmp_path) not in e.value.detail, e.value.detail


def test_count_frames_on_a_cut_stream_counts_what_decodes(files):
    """A stream cut short is counted up to the cut, as ffprobe -count_frames counts it (it used to let
    av.error.InvalidDataError escape, then to raise decode_error for the whole file)."""
    assert video.count_frames(files["t.mp4"]) == 20
    out = subprocess.run(["ffprobe", "-v", "quiet", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames", "-of", "csv=p=0", str(files["cut.mp4"])],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert 0 < video.count_frames(files["cut.mp4"]) == int(out.strip()) < 20


# ---------------------------------------------------------------------------------------------- probing


@pytest.mark.parametrize("name", ["t.mp4", "t.webm", "t.avi", "t.ts", "fast.mp4", "cut.mp4"])
def test_pyav_probe_matches_ffprobe(files, name):
    """Same VideoInfo in-process as through the ffprobe subprocess (ingest's clip ids follow num_frames)."""
    info = video.probe(files[name])
    assert info == video.probe(files[name], backend="ffprobe") == video.probe(files[name], backend="pyav")
    assert (info.width, info.height, info.num_frames, info.fps) == (96, 64, 20, 10.0)


def test_ffprobe_counts_frames_the_container_does_not_know(files):
    assert video.probe(files["t.h264"], backend="pyav").num_frames == 0  # a raw stream: no count, no duration
    info = video.probe(files["t.h264"])  # auto: ffprobe -count_packets
    assert info.num_frames == 20 and info.duration_s == pytest.approx(info.num_frames / info.fps)


def test_stream_without_a_decoder_falls_back_to_ffprobe(files, tmp_path):
    """An unknown codec tag: PyAV exposes no codec parameters, ffprobe still reads size and counts (the API's fuzz
    test found this as a 500); decoding then fails with a VideoError."""
    odd = tmp_path / "odd.mp4"
    odd.write_bytes(files["t.mp4"].read_bytes().replace(b"avc1", b"zzz1"))
    info = video.probe(odd)
    assert info == video.probe(odd, backend="ffprobe") and (info.width, info.num_frames, info.codec) == (96, 20, "")
    with pytest.raises(video.VideoError, match="pyav"):
        video.probe(odd, backend="pyav")
    with pytest.raises(video.VideoError) as e:
        video.decode_frames(odd, [0])
    assert e.value.reason == "decode_error"


# ---------------------------------------------------------------------------------------------- indices


def test_clip_indices_one_definition():
    assert video.clip_indices(clip_len=4, stride=2, start=3) == [3, 5, 7, 9]  # ingest: no clamping
    assert video.clip_indices(clip_len=4, stride=2, start=3, total_frames=8) == [3, 5, 7, 7]  # repeats the last
    assert video.clip_indices(clip_len=3, total_frames=100) == [0, 1, 2]
    with pytest.raises(TypeError):
        video.clip_indices(3, 4, 2)  # keyword-only: the two old helpers took these in different orders
    with pytest.raises(ValueError):
        video.clip_indices(clip_len=4, total_frames=0)
    with pytest.raises(ValueError):
        video.clip_indices(clip_len=4, stride=0)
    from videomae import transforms

    assert transforms.clip_indices is video.clip_indices


# ---------------------------------------------------------------------------------------------- eval_clip


def _whole_clip_eval(frames: np.ndarray, size: int) -> torch.Tensor:
    """The previous eval_clip: the whole clip to float at full resolution, then resize, crop, normalise."""
    return normalize(center_crop(resize_clip_short_side(to_tensor(frames), size), size))


@pytest.mark.parametrize(("shape", "size"), [((5, 90, 160, 3), 32), ((3, 48, 40, 3), 64), ((2, 32, 48, 3), 32),
                                             ((4, 121, 77, 3), 56)])  # fmt: skip
def test_eval_clip_frame_by_frame_matches_whole_clip(shape, size):
    frames = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    new, old = eval_clip(frames, size), _whole_clip_eval(frames, size)
    assert new.shape == old.shape == (3, shape[0], size, size)
    torch.testing.assert_close(new, old, rtol=0, atol=1e-6)
    torch.testing.assert_close(eval_clip(torch.from_numpy(frames), size), new, rtol=0, atol=0)
    with pytest.raises(ValueError):
        eval_clip(frames[:0], size)
