"""The real-world video zoo (issue 14): files made with ffmpeg the way real collections hold them (damaged, unusual
containers, codecs, pixel formats, sizes, rotations, stream layouts), each with its stated outcome for ingest and for
the API. `build(directory)` writes them all (about 30 files, 1 s or less each, tiny frames: a few seconds on two
cores) and returns the cases; tests/conftest.py builds it once per session (`video_zoo`) for tests/ingest,
tests/api and tests/videomae.

Outcomes, for the zoo's ingest config (clips of 8 frames at stride 1, so one clip needs 8 frames) and the API's
nano model (clips of 8 frames, frame_stride 1 for /v1/embed):
- kept with N frames (ingest: in videos.parquet with num_frames N; API: 200 with num_frames N), where N is the
  frames that decode: by construction, or, for damaged files, what `ffprobe -count_frames` counts (ffmpeg's own
  count, an independent reference), always below what the header claims;
- rejected with a reason (ingest: rejects.parquet reason and a detail fragment; API: the status and error tag).

Feature extraction and the search CLI's video query (tests/api/test_api_zoo.py) read as the API does: a kept file
gives /v1/embed's windows and features; a rejected one is refused for its ingest reason, with the words of the API's
refusal when the API's limits let the file through to reading.

Every file has its own content (a distinct generator or colouring), so none is a near-duplicate of another.
"""

from __future__ import annotations

import random
import struct
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

COUNTED = -1  # expected frames: ffprobe -count_frames on the generated file (damaged files)


@dataclass(frozen=True)
class Case:
    name: str
    what: str  # the real-world situation the file stands for
    make: Callable[[Path], None]
    frames: int | None  # kept with this many frames (COUNTED: ffprobe's count); None: rejected
    reason: str = ""  # ingest reject reason (when frames is None)
    detail: str = ""  # a fragment of the ingest reject detail
    api: tuple[int, str] = (200, "")  # status and error tag of /v1/embed (and /v1/reconstruct)
    header_frames: int | None = None  # what the header claims, where it differs from the frames that decode
    facts: dict = field(default_factory=dict)  # more videos.parquet columns to check (width, rotation, ...)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, capture_output=True, timeout=120)


def ffprobe_count(path: Path) -> int:
    out = subprocess.run(["ffprobe", "-v", "quiet", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True, timeout=60).stdout  # fmt: skip
    return int(out.strip().splitlines()[0])


def lavfi(graph: str) -> list[str]:
    return ["-f", "lavfi", "-i", graph]


X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def encode(graph: str, *codec: str) -> Callable[[Path], None]:
    return lambda out: ffmpeg(*lavfi(graph), *(codec or X264), str(out))


# ---------------------------------------------------------------------------------------------- damaged files
def avi_claiming(claim: int) -> Callable[[Path], None]:
    """An MJPEG AVI of 20 frames whose header claims `claim` (avih dwTotalFrames and strh dwLength patched) and whose
    index (idx1) is gone, as a crashed recorder leaves it: the issue's 'plays 68 frames, claims 444'."""

    def make(out: Path) -> None:
        ffmpeg(*lavfi("cellauto=s=64x48:r=25:rule=30:seed=5,trim=end_frame=20"), "-c:v", "mjpeg", "-q:v", "5",
               str(out))  # fmt: skip
        data = bytearray(out.read_bytes())
        avih, strh, idx1 = data.find(b"avih"), data.find(b"strh"), data.find(b"idx1")
        struct.pack_into("<I", data, avih + 8 + 16, claim)  # MainAVIHeader.dwTotalFrames
        struct.pack_into("<I", data, strh + 8 + 32, claim)  # AVIStreamHeader.dwLength
        out.write_bytes(bytes(data[:idx1]))

    return make


def cut(make_whole: Callable[[Path], None], fraction: float, extra: int = 0) -> Callable[[Path], None]:
    """The first `fraction` of a file's bytes (+ `extra`): a download or recording cut short."""

    def make(out: Path) -> None:
        whole = out.with_name(out.name + ".whole" + out.suffix)
        make_whole(whole)
        data = whole.read_bytes()
        out.write_bytes(data[: int(len(data) * fraction) + extra])
        whole.unlink()

    return make


def faststart(make_whole: Callable[[Path], None]) -> Callable[[Path], None]:
    """An MP4 with its moov (the index and the frame count) before the media data, as made for progressive download."""

    def make(out: Path) -> None:
        plain = out.with_name(out.name + ".plain.mp4")
        make_whole(plain)
        ffmpeg("-i", str(plain), "-c", "copy", "-movflags", "+faststart", "-f", "mp4", str(out))
        plain.unlink()

    return make


def corrupt(make_whole: Callable[[Path], None], start: float, stop: float, seed: int = 0) -> Callable[[Path], None]:
    """Random bytes over [start, stop) of the file (fractions, inside the media data): a damaged stretch."""

    def make(out: Path) -> None:
        make_whole(out)
        data = bytearray(out.read_bytes())
        a, b = int(len(data) * start), int(len(data) * stop)
        data[a:b] = random.Random(seed).randbytes(b - a)
        out.write_bytes(bytes(data))

    return make


def rotated(degrees: int) -> Callable[[Path], None]:
    """Frames stored sideways with a display matrix, as phones record portrait video: a player shows them turned
    `degrees` (ffmpeg's `rotate` tag, written with -c copy)."""

    def make(out: Path) -> None:
        stored = out.with_name(out.name + ".stored.mp4")
        ffmpeg(*lavfi("testsrc=s=64x48:r=25:d=1,hue=h=200"), *X264, str(stored))
        ffmpeg("-i", str(stored), "-c", "copy", "-metadata:s:v:0", f"rotate={degrees}", str(out))
        stored.unlink()

    return make


def two_streams(out: Path) -> None:
    """Two video streams, the second marked default (a camera's main and preview streams): the second is read."""
    ffmpeg(*lavfi("mandelbrot=s=64x48:r=25,trim=duration=1"), *lavfi("life=s=32x24:r=25:seed=3,trim=duration=1"),
           "-map", "0", "-map", "1", *X264, "-disposition:v:0", "0", "-disposition:v:1", "default",
           str(out))  # fmt: skip


def cover_art_only(out: Path) -> None:
    """Audio with an attached picture (an album cover), no video stream."""
    ffmpeg(*lavfi("sine=d=1"), *lavfi("color=c=red:s=32x32:d=0.04"), "-map", "0", "-map", "1", "-c:a", "aac",
           "-c:v", "mjpeg", "-disposition:v:0", "attached_pic", str(out))  # fmt: skip


def streamed_webm(out: Path) -> None:
    """WebM written to a pipe: no duration, no cues (live capture, remux without an index)."""
    proc = subprocess.run(["ffmpeg", "-v", "error", *lavfi("gradients=s=64x48:r=25:seed=4:d=1"), "-c:v", "libvpx",
                           "-deadline", "realtime", "-pix_fmt", "yuv420p", "-f", "webm", "pipe:1"], check=True,
                          capture_output=True, timeout=60)  # fmt: skip
    out.write_bytes(proc.stdout)


# Variable frame rate: of 60 frames at 30 fps, the select keeps 5 of each 10 for the first 40 and all after (40 kept).
VFR = "testsrc2=s=64x48:r=30:d=2,hue=h={hue},select='lt(mod(n\\,10)\\,5)+gt(n\\,39)'"


def cases() -> list[Case]:
    """Every zoo file with its stated outcome (see the module docstring)."""
    mp4_50 = encode("smptehdbars=s=64x48:r=25:d=2,hue=H=2*PI*t", *X264, "-g", "5")
    return [
        # ---- headers that overstate
        Case("header_claims_444.avi", "AVI from a crashed recorder: header claims 444 frames (17.6 s), 20 exist",
             avi_claiming(444), 20, header_frames=444),
        Case("truncated_after_header.mp4", "fast-start MP4 cut during download: moov claims 50 frames",
             cut(faststart(mp4_50), 0.55), COUNTED, header_frames=50),
        Case("cut_mid_frame.ts", "MPEG-TS recording cut inside a frame (mid 188-byte packet)",
             cut(encode("testsrc2=s=64x48:r=25:d=2,hue=h=120", *X264, "-g", "5", "-f", "mpegts"), 0.6, extra=93),
             COUNTED),
        Case("corrupt_middle.mp4", "MP4 with a corrupt stretch in the middle; the frames after it still decode",
             corrupt(encode("sierpinski=s=64x48:r=25:seed=2,trim=duration=2,hue=h=30", *X264, "-g", "5"), 0.30, 0.62),
             COUNTED, header_frames=50),
        Case("vfr.mkv", "variable frame rate in Matroska: the count is estimated from a nominal 30 fps (claims 60)",
             encode(VFR.format(hue=60), *X264, "-vsync", "vfr", "-f", "matroska"), 40, header_frames=60),
        Case("vfr.mp4", "variable frame rate in MP4 (screen recording): the count holds", encode(VFR.format(hue=240),
             *X264, "-vsync", "vfr"), 40),
        Case("streamed.webm", "WebM without duration or cues (written to a pipe)", streamed_webm, 25),
        Case("fragmented.mp4", "fragmented MP4 (empty moov, remuxed for streaming)",
             encode("testsrc2=s=64x48:r=25:d=1,hue=h=250:s=2", *X264, "-movflags", "frag_keyframe+empty_moov"), 25),
        # ---- orientation, pixel formats, sizes
        Case("rotate_90.mp4", "portrait phone video: stored sideways, display matrix 90", rotated(90), 25,
             facts={"rotation": 90, "width": 48, "height": 64}),
        Case("rotate_270.mp4", "display matrix 270", rotated(270), 25,
             facts={"rotation": 270, "width": 48, "height": 64}),
        Case("yuv420p10.mp4", "10-bit H.264", encode("testsrc2=s=64x48:r=25:d=1,hue=h=300", "-c:v", "libx264",
             "-preset", "ultrafast", "-pix_fmt", "yuv420p10le"), 25),
        Case("yuv444p.mp4", "4:4:4 H.264", encode("rgbtestsrc=s=64x48:r=25:d=1,rotate=a=2*t", "-c:v", "libx264",
             "-preset", "ultrafast", "-pix_fmt", "yuv444p"), 25),
        Case("odd_63x47.mp4", "odd frame size (4:4:4, so no chroma rounding)", encode(
             "testsrc=s=64x48:r=25:d=1,hue=h=90,crop=63:47:0:0", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
             "yuv444p"), 25, facts={"width": 63, "height": 47}),
        Case("gray.mp4", "grayscale", encode("mandelbrot=s=64x48:r=25:start_scale=1,trim=duration=1", "-c:v", "libx264",
             "-preset", "ultrafast", "-pix_fmt", "gray"), 25),
        Case("tiny_32x24.mp4", "a 32x24 clip", encode("cellauto=s=32x24:r=25:rule=90:seed=1,trim=duration=1"), 25,
             facts={"width": 32, "height": 24}),
        # ---- codecs and containers
        Case("hevc.mp4", "HEVC (libx265)", encode("life=s=64x48:r=25:seed=11:mold=5,trim=duration=1", "-c:v",
             "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p"), 25),
        Case("vp9.webm", "VP9 (libvpx-vp9)", encode("gradients=s=64x48:r=25:seed=21:d=1", "-c:v", "libvpx-vp9",
             "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", "yuv420p"), 25),
        Case("av1.mkv", "AV1 (libaom; decord cannot decode it: PyAV reads it)", encode(
             "testsrc2=s=64x48:r=25:d=1,hue=h=160:s=0.5", "-c:v", "libaom-av1", "-cpu-used", "8", "-usage", "realtime"),
             25),
        Case("mjpeg.avi", "Motion JPEG in AVI", encode("smptebars=s=64x48:r=25:d=1,hue=H=4*PI*t", "-c:v", "mjpeg"), 25),
        Case("mpegts.ts", "MPEG-TS (H.264)", encode("yuvtestsrc=s=64x48:r=25:d=1,rotate=a=-3*t", *X264, "-f", "mpegts"),
             25),
        Case("animated.gif", "animated GIF (10 fps)", encode("life=s=64x48:r=10:seed=7:life_color=#30ff30,"
             "trim=duration=1.2", "-c:v", "gif"), 12),
        Case("two_streams.mp4", "two video streams, the second marked default", two_streams, 25,
             facts={"stream_index": 1, "video_streams": 2, "width": 32, "height": 24}),
        # ---- rejected
        Case("short_0.2s.mp4", "a 0.2 s clip: 5 frames, one clip needs 8", encode("testsrc2=s=64x48:r=25:d=0.2"),
             None, "too_short", "5 frames decode; one clip needs 8", (422, "video_too_short")),
        Case("frame_4k.mp4", "one 3840x2160 frame: beyond the API's pixel limit; one frame is too short to ingest",
             encode("testsrc2=s=3840x2160:r=25,trim=end_frame=1"), None, "too_short", "1 frames decode",
             (422, "resolution_too_large")),
        Case("audio_only.m4a", "audio only", lambda out: ffmpeg(*lavfi("sine=d=1"), "-c:a", "aac", str(out)), None,
             "no_video_stream", "audio only", (422, "no_video_stream")),
        Case("cover_art_only.m4a", "audio with an attached picture (cover art) only", cover_art_only, None,
             "no_video_stream", "attached picture", (422, "no_video_stream")),
    ]  # fmt: skip


@dataclass
class Zoo:
    root: Path
    cases: dict[str, Case]
    expected_frames: dict[str, int]  # kept cases: the frames that decode (COUNTED resolved with ffprobe)

    def path(self, name: str) -> Path:
        return self.root / name


def build(root: Path, workers: int = 2) -> Zoo:
    """Write every case's file under `root`; resolve COUNTED expectations with ffprobe."""
    root.mkdir(parents=True, exist_ok=True)
    all_cases = cases()
    with ThreadPoolExecutor(workers) as pool:
        for fut in [pool.submit(c.make, root / c.name) for c in all_cases]:
            fut.result()
    expected = {c.name: ffprobe_count(root / c.name) if c.frames == COUNTED else c.frames
                for c in all_cases if c.frames is not None}  # fmt: skip
    return Zoo(root, {c.name: c for c in all_cases}, expected)
