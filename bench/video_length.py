"""What checking a video's length costs: the container's claim (probe), the fast path that verifies it (decoding the
claimed last frame), and the fallback that counts every frame, against ffmpeg decoding the whole file.

    python bench/video_length.py [--seconds 10] [--repeats 5] [--json out.json]

Generates H.264 files with ffmpeg (640x360 and 1280x720, GOP 250 as x264's default and GOP 30; and each cut to its
first half, keeping the header: the case that falls back), then times, per file and best of --repeats:
  probe       videomae.video.probe: the header's claims (PyAV in-process; decodes the first frame for its rotation)
  verify      videomae.video.verify_length on an honest header: decord seeks to the claimed last frame (one GOP)
  fallback    verify_length on the cut file: the fast path fails, every frame that decodes is counted (PyAV)
  ffmpeg      `ffmpeg -threads 1 -i FILE -f null -`: one full decode, the floor any full count pays
and prints them with ratios to the ffmpeg decode. One process, one thread each (decord num_threads=1, PyAV slice
threads on one core), so the ratios hold on any machine; absolute times depend on the CPU and its load.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tables import table  # bench/tables.py (bench/ is on the path when a script runs)

from videomae import video


def make(path: Path, size: str, seconds: float, gop: int) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r=30:d={seconds}", "-c:v",
                    "libx264", "-preset", "veryfast", "-g", str(gop), "-pix_fmt", "yuv420p", "-movflags", "+faststart",
                    str(path)], check=True)  # fmt: skip


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def ffmpeg_decode(path: Path) -> None:
    subprocess.run(["ffmpeg", "-v", "quiet", "-threads", "1", "-i", str(path), "-f", "null", "-"], check=True)


def measure(path: Path, cut: Path, repeats: int) -> dict:
    info = video.probe(path)
    cut_info = video.probe(cut)
    honest = video.verify_length(path, info)
    counted = video.verify_length(cut, cut_info)
    assert not honest.counted and counted.counted and counted.num_frames < cut_info.num_frames
    row = {
        "file": path.name,
        "frames": info.num_frames,
        "MB": round(path.stat().st_size / 1e6, 2),
        "probe_ms": best_of(lambda: video.probe(path), repeats) * 1e3,
        "verify_ms": best_of(lambda: video.verify_length(path, info), repeats) * 1e3,
        "fallback_ms": best_of(lambda: video.verify_length(cut, cut_info), max(1, repeats // 2)) * 1e3,
        "cut_frames": f"{counted.num_frames} of {cut_info.num_frames} claimed",
        "ffmpeg_ms": best_of(lambda: ffmpeg_decode(path), max(1, repeats // 2)) * 1e3,
        "ffmpeg_cut_ms": best_of(lambda: ffmpeg_decode(cut), max(1, repeats // 2)) * 1e3,
    }
    row["verify_x_ffmpeg"] = round(row["verify_ms"] / row["ffmpeg_ms"], 3)
    row["fallback_x_ffmpeg_cut"] = round(row["fallback_ms"] / row["ffmpeg_cut_ms"], 2)
    return {k: round(v, 1) if k.endswith("_ms") else v for k, v in row.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-length-") as tmp:
        for size in ("640x360", "1280x720"):
            for gop in (250, 30):
                path = Path(tmp) / f"{size}_gop{gop}.mp4"
                make(path, size, args.seconds, gop)
                cut = path.with_name(f"cut_{path.name}")
                data = path.read_bytes()
                cut.write_bytes(data[: len(data) // 2])  # moov first: the header still claims every frame
                rows.append(measure(path, cut, args.repeats))
                print(rows[-1], file=sys.stderr)
    print(f"length checks, {args.seconds:g} s H.264 at 30 fps (best of {args.repeats}; one thread each)")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
