"""Textured objects in motion: the data of the data-efficiency experiment (docs/results.md), generated here.

    python -m ingest.objects_data OUT_DIR [--train-per-class 12] [--val-per-class 24] [--unlabeled 1600] [--seed 0]
                                          [--look JSON]

Writes, under OUT_DIR:
  labeled/, labeled.csv     videos of 8 motion classes (the sample set's merged names: move left/right/up/down,
                            rotate cw/ccw, grow, shrink), `--train-per-class` train and `--val-per-class` val each
  unlabeled/                `--unlabeled` more videos of the same kind, random classes, no labels: the pre-training pool
  ingest.yaml               the ingest config of the tree (`python -m ingest --config OUT_DIR/ingest.yaml`)

Every video: a background and one or more sprites (notched bars, so orientation shows) doing the video's motion:
translation at constant speed on a torus, rotation at a constant rate, or exponential growth/shrinkage about each
sprite's centre. `--look` (JSON of `Look`'s fields) sets how a video looks, independent of its class. The default
look is textured: backgrounds cut from scikit-image's photographs (grass, gravel, brick, moon, cells, ...: real
textures shipped in its wheel, nothing downloaded), tinted, flipped and lowered in contrast, and a sprite textured
from another photograph (astronaut, cat, coffee, rocket, ...). The experiment's look (configs/experiments/full.yaml)
is a swarm of 4-6 flat-coloured sprites (each a 2 x 2 colour field of a photograph) on a four-corner colour ramp:
under per-patch normalised targets, photographic texture and near-flat regions are mostly unpredictable noise, and
the pre-training loss stayed at 0.95-0.99 on the textured look where the swarm's fell to 0.80 (docs/results.md
"The data"). Optionally (`distractors`) other sprites drift in random directions, unrelated to the class. The class is
in the motion only: positions, sizes, orientations, colours and background are drawn independently of it, so one
frame does not tell the class (by construction; no test measures it).

Frames are rendered at twice the output size and box-filtered down (sub-pixel motion, no aliasing). The per-video
seed comes from (split, index), so any subset is reproducible, and a different `--seed` gives unseen videos with the
same distribution (scripts/check_results.py uses that for a fresh evaluation set).
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from ingest.sample_data import _random_colour, encode_frames

log = logging.getLogger(__name__)

CLASSES = ["move left", "move right", "move up", "move down", "rotate cw", "rotate ccw", "grow", "shrink"]
# scikit-image's bundled photographs (skimage/data/*, in the wheel): backgrounds are mostly textures, sprites objects.
BACKGROUNDS = ["grass.png", "gravel.png", "brick.png", "moon.png", "cell.png", "hubble_deep_field.jpg", "retina.jpg",
               "ihc.png", "text.png", "page.png", "coffee.png", "chelsea.png", "astronaut.png", "camera.png",
               "rocket.jpg", "motorcycle_left.png"]
SPRITES = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_right.png", "ihc.png",
           "hubble_deep_field.jpg", "retina.jpg", "color.png", "coins.png", "camera.png", "phantom.png"]
# An elongated, notched bar (as the sample set's shape): its orientation is visible, no rotational symmetry.
_BAR = [(-1.0, -0.45), (1.0, -0.45), (1.0, 0.45), (0.25, 0.45), (0.0, 0.95), (-0.25, 0.45), (-1.0, 0.45)]


@dataclass(frozen=True)
class Look:
    """How a video looks, independent of its class."""

    size: int = 64  # output frames are size x size
    fps: int = 12
    seconds: float = 2.5
    sprite_scale: tuple[float, float] = (0.30, 0.42)  # sprite half-length / frame size
    bg_contrast: tuple[float, float] = (0.25, 0.55)  # background blended towards its mean colour: 1 = untouched
    bg_zoom: tuple[float, float] = (0.25, 0.7)  # share of a photograph's short side a background is cut from
    sprite_zoom: tuple[float, float] = (0.25, 0.7)  # the same for a sprite's texture: smaller = smoother, larger
    bg_ramp: float = 0.0  # 0..1: the background's mean colour replaced by a four-corner colour ramp (the sample set's)
    bg_cells: int | None = None  # keep only a cells x cells colour field of the background's photograph (smooth)
    sprite_cells: int | None = None  # the same for the sprite's texture
    objects: tuple[int, int] = (1, 1)  # how many sprites do the class's motion (each its own speed and start)
    distractors: int = 0  # other sprites, drifting at random


@functools.cache
def _photo(name: str) -> np.ndarray:
    """One of scikit-image's bundled photographs (a file in its wheel's `skimage/data`, read as a file: no fetcher)
    as float RGB (H, W, 3) in [0, 1]."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")  # located, not imported: only its data files are used
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ingest.objects_data needs scikit-image's photographs: pip install scikit-image")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def _tint(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random colour cast (grey photographs become coloured), flips and a quarter turn."""
    img = img * rng.uniform(0.55, 1.0, 3) + rng.uniform(0.0, 0.3, 3)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.5:
        img = img[::-1]
    return np.rot90(img, int(rng.integers(4))).clip(0, 1)


def _crop(img: np.ndarray, side: int, zoom: tuple[float, float], rng: np.random.Generator,
          cells: int | None = None) -> np.ndarray:
    """A random square crop covering a `zoom` share of the photograph's short side, resized to side x side; with
    `cells`, only its cells x cells colour field (box-averaged, then bicubic up): the photograph's colours, smooth."""
    h, w, _ = img.shape
    c = max(8, int(min(h, w) * rng.uniform(*zoom)))
    y, x = int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1))
    patch = Image.fromarray((img[y:y + c, x:x + c] * 255).astype(np.uint8))
    if cells:
        patch = patch.resize((cells, cells), Image.BOX).resize((side, side), Image.BICUBIC)
    else:
        patch = patch.resize((side, side), Image.LANCZOS)
    return np.asarray(patch, dtype=np.float32) / 255.0


def _background(look: Look, rng: np.random.Generator) -> np.ndarray:
    side = 2 * look.size
    bg = _tint(_crop(_photo(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]), side, look.bg_zoom, rng,
                     look.bg_cells), rng)
    keep = rng.uniform(*look.bg_contrast)
    base = bg.mean((0, 1))
    if look.bg_ramp:
        corners = np.stack([_random_colour(rng) for _ in range(4)]) / 255.0  # (4, 3): top-left, top-right, ...
        v, u = np.mgrid[0:side, 0:side][..., None] / (side - 1)
        ramp = (1 - v) * ((1 - u) * corners[0] + u * corners[1]) + v * ((1 - u) * corners[2] + u * corners[3])
        base = look.bg_ramp * ramp + (1 - look.bg_ramp) * base
    return (bg - bg.mean((0, 1))) * keep + base  # lower contrast: the sprite stands out


def _sprite(look: Look, rng: np.random.Generator) -> Image.Image:
    """A textured RGBA notched bar, 2 * half-length wide, at the render scale (long axis horizontal)."""
    half = 2 * look.size * rng.uniform(*look.sprite_scale)
    w, h = int(round(2 * half)), int(round(2 * half))
    tex = _tint(_crop(_photo(SPRITES[int(rng.integers(len(SPRITES)))]), max(w, h), look.sprite_zoom, rng,
                      look.sprite_cells), rng)
    tex = (tex - tex.mean()) * 1.3 + tex.mean() + rng.uniform(-0.25, 0.25, 3)  # boost contrast, shift colour
    alpha = Image.new("L", (w, h), 0)
    ImageDraw.Draw(alpha).polygon([(half + half * x, half + half * y) for x, y in _BAR], fill=255)
    rgba = np.dstack([(tex.clip(0, 1) * 255).astype(np.uint8), np.asarray(alpha)])
    return Image.fromarray(rgba, "RGBA")


def _posed(sprite: Image.Image, angle: float, scale: float, cache: dict) -> Image.Image:
    """`sprite` scaled, then rotated by `angle` degrees (clockwise on screen); the last pose is kept in `cache`, so a
    sprite that only translates is transformed once per video, not once per frame."""
    key = (id(sprite), angle, scale)
    if key not in cache:
        s = sprite
        if scale != 1.0:
            s = s.resize((max(1, round(s.width * scale)), max(1, round(s.height * scale))), Image.BICUBIC)
        cache[key] = s.rotate(-angle, resample=Image.BICUBIC, expand=True)
    return cache[key]


def _paste(canvas: Image.Image, s: Image.Image, cx: float, cy: float, wrap: bool) -> None:
    """Paste the posed sprite `s` centred at (cx, cy); on a torus when `wrap` (a sprite leaving one edge comes back
    at the other)."""
    side = canvas.width
    shifts = (-side, 0, side) if wrap else (0,)
    x0, y0 = (cx % side, cy % side) if wrap else (cx, cy)
    for ox in shifts:
        for oy in shifts:
            left, top = round(x0 + ox - s.width / 2), round(y0 + oy - s.height / 2)
            if left < side and top < side and left + s.width > 0 and top + s.height > 0:
                canvas.paste(s, (left, top), s)  # the sprite's alpha as the mask


def _motion(label: str, k: int, n: int, x0: float, y0: float, angle0: float, speed: float, turn: float,
            rate: float) -> tuple[float, float, float, float]:
    """(cx, cy, angle, scale) of a sprite doing `label` at frame k of n."""
    cx, cy, angle, scale = x0, y0, angle0, 1.0
    if label == "move left":
        cx = x0 - speed * k
    elif label == "move right":
        cx = x0 + speed * k
    elif label == "move up":
        cy = y0 - speed * k
    elif label == "move down":
        cy = y0 + speed * k
    elif label == "rotate cw":
        angle = angle0 + turn * k  # image y points down: a growing angle turns clockwise on screen
    elif label == "rotate ccw":
        angle = angle0 - turn * k
    else:  # grow / shrink about the sprite's own centre, its drawn size at mid-video
        scale = math.exp((1 if label == "grow" else -1) * rate * (k - n / 2))
    return cx, cy, angle, scale


def render(label: str, look: Look, rng: np.random.Generator) -> np.ndarray:
    """(T, size, size, 3) uint8 frames of `look.objects` textured sprites, all doing `label`, on a textured background
    (plus `look.distractors` sprites drifting at random, unrelated to the class).

    Speeds, each sprite its own: over a clip of 8 frames at stride 2 (16 frames at 12 fps, 1.3 s) a translating
    sprite crosses ~40% of the frame, a rotating one turns ~170-230 degrees, a growing one scales ~1.8x. Every frame
    of the video shows its class. Sprites are drawn in a random order, so they occlude each other."""
    if label not in CLASSES:
        raise ValueError(f"unknown class {label!r}; classes: {', '.join(CLASSES)}")
    n, side = int(round(look.seconds * look.fps)), 2 * look.size
    bg = Image.fromarray((_background(look, rng) * 255).astype(np.uint8)).convert("RGB")
    count = int(rng.integers(look.objects[0], look.objects[1] + 1))
    actors = []  # (sprite, motion of `label` or None for a distractor, x0, y0, angle0, speed, turn, rate, vx, vy)
    for i in range(count + look.distractors):
        actors.append((_sprite(look, rng), label if i < count else None, *rng.uniform(0, side, 2),
                       rng.uniform(0, 360), rng.uniform(0.30, 0.40) * side / look.fps, rng.uniform(130, 170) / look.fps,
                       math.log(rng.uniform(1.5, 1.75)) / look.fps, *rng.normal(0, 0.12 * side / look.fps, 2)))
    order = rng.permutation(len(actors))
    frames = np.empty((n, look.size, look.size, 3), np.uint8)
    poses: dict = {}
    for k in range(n):
        canvas = bg.copy()
        for i in order:
            sprite, motion, x0, y0, angle0, speed, turn, rate, vx, vy = actors[i]
            if motion is None:
                cx, cy, angle, scale = x0 + vx * k, y0 + vy * k, angle0, 1.0
            else:
                cx, cy, angle, scale = _motion(motion, k, n, x0, y0, angle0, speed, turn, rate)
            _paste(canvas, _posed(sprite, angle, scale, poses), cx, cy, wrap=True)
        frames[k] = np.asarray(canvas.reduce(2))  # box filter 2x2: the output size
    return frames


def look_from_json(text: str) -> Look:
    """`Look` from a JSON object of its fields (lists become tuples); an unknown field names the valid ones."""
    fields = json.loads(text) if isinstance(text, str) else dict(text)
    known = set(Look.__dataclass_fields__)
    if set(fields) - known:
        raise ValueError(f"unknown look field(s) {sorted(set(fields) - known)}; fields: {', '.join(sorted(known))}")
    return Look(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def _video(out: Path, label: str, look: Look, seed: list[int]) -> None:
    encode_frames(render(label, look, np.random.default_rng(seed)), look.fps, out)


def generate(out_dir: str | Path, train_per_class: int = 12, val_per_class: int = 24, unlabeled: int = 1600,
             seed: int = 0, look: Look = Look(), workers: int = 2) -> dict:
    """Write the labeled and unlabeled videos and `labeled.csv`; returns the counts. Seeds: labeled video k of class
    c in split s from [seed, 1, s, c, k]; unlabeled video k from [seed, 2, k] (its class from the same generator)."""
    out = Path(out_dir)
    (out / "labeled").mkdir(parents=True, exist_ok=True)
    (out / "unlabeled").mkdir(parents=True, exist_ok=True)
    jobs, rows = [], []
    for s, (split, count) in enumerate((("train", train_per_class), ("val", val_per_class))):
        for c, label in enumerate(CLASSES):
            for k in range(count):
                name = f"{split}_{label.replace(' ', '_')}_{k:03d}.mp4"
                rows.append({"uri": f"labeled/{name}", "label": label, "split": split})
                jobs.append((out / "labeled" / name, label, [seed, 1, s, c, k]))
    for k in range(unlabeled):
        label = CLASSES[int(np.random.default_rng([seed, 2, k, 0]).integers(len(CLASSES)))]
        jobs.append((out / "unlabeled" / f"pool_{k:05d}.mp4", label, [seed, 2, k]))
    todo = [j for j in jobs if not j[0].exists()]  # a rerun finishes what an interrupted one left
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, fut in enumerate([pool.submit(_video, path, label, look, sd) for path, label, sd in todo]):
            fut.result()
            if (i + 1) % 200 == 0 or i + 1 == len(todo):
                log.info("rendered %d/%d videos", i + 1, len(todo))
    with open(out / "labeled.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["uri", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    return {"classes": len(CLASSES), "train_per_class": train_per_class, "val_per_class": val_per_class,
            "unlabeled": unlabeled, "seed": seed}


# The ingest config of a generated tree: what `write_ingest_config` writes.
SOURCES = [
    {"name": "objects", "kind": "labeled", "path": "labeled.csv", "stride": 2},
    {"name": "pool", "kind": "unlabeled", "path": "unlabeled", "stride": 2},
]
SETTINGS = {
    "clips": {"num_frames": 8, "stride": 2, "short_side": 64, "clips_per_video": 2, "jpeg_quality": 90},
    "dedupe": {"interval_s": 0.5, "max_samples": 16, "threshold": 0.03},
    "ray": {"videos_per_part": 64},
}


def write_ingest_config(root: str | Path, sources: list[dict] | None = None) -> Path:
    """`<root>/ingest.yaml`: the tree's sources, the settings above, output `<root>/shards`."""
    path, root = Path(root) / "ingest.yaml", Path(root).resolve()
    body = yaml.safe_dump({"output": f"{root}/shards", "root": str(root), "sources": sources or SOURCES, **SETTINGS})
    path.write_text(f"# python -m ingest --config {path}   (written by python -m ingest.objects_data)\n{body}")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ingest.objects_data", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--train-per-class", type=int, default=12, help="labeled train videos per class")
    ap.add_argument("--val-per-class", type=int, default=24, help="labeled held-out videos per class")
    ap.add_argument("--unlabeled", type=int, default=1600, help="videos in the unlabeled pool")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--look", default="{}", help='JSON of Look fields, e.g. \'{"sprite_cells": 4, "distractors": 1}\'')
    ap.add_argument("--workers", type=int, default=2, help="parallel renders (each with its ffmpeg)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    counts = generate(args.out_dir, args.train_per_class, args.val_per_class, args.unlabeled, args.seed,
                      look_from_json(args.look), args.workers)
    config = write_ingest_config(args.out_dir)
    log.info("wrote %s to %s; ingest it with python -m ingest --config %s", counts, args.out_dir, config)


if __name__ == "__main__":
    main()
