"""Training input at the decode limit: clips/s per CPU core delivered to the training loop, from clip shards (ours)
against decoding the original videos per sample (the reference's way) and against a bare JPEG-decode loop (the limit).

    python bench/realistic_videos.py data/bench-videos          # Kinetics-like and SSv2-like videos + their shards
    python bench/loader.py --inputs data/bench-videos --json loader.json [--num-sample 1 2 4] [--views 192]

Every arm delivers the same output to the consumer (the training loop's side): `num_sample` views per decoded clip,
each a 16-frame multi-scale crop of 224 px with its own encoder (tube 0.9) and decoder (running cell 0.5) masks, as
uint8 pixels that the consumer turns into normalised model input (`frames_to_input`, the worker's device's job).
- reference: a torch DataLoader with `--workers` processes; per sample, open the original video with decord, seek and
  decode the clip's 16 frames (stride 4 Kinetics-like, 2 SSv2-like) at full size, then `num_sample` augmented views
  (the reference's `pretrain_datasets.py` with `--num_sample`); the same crop/mask code as ours, so the difference
  is where the pixels come from.
- ours: the trainer's data path (trainer/data.py `build_dataset`: Parquet pieces -> JPEG decode -> views and masks
  as Ray Data tasks with 1 CPU each), consumed with iter_torch_batches as a training worker does.
- ours in-process: the same decode function (`decode_batch`) on the same rows in `--workers` threads, no Ray: what
  Ray's scheduling and object store cost on top. "whole frames": the same with box decoding off
  (videomae/video/jpegbox.py), every frame decoded whole as before it: the same samples, the baseline of its gain.
- limit: a bare loop decoding the same JPEG rows (the clips' 16 frames, already in memory) with simplejpeg (the
  fastest libjpeg-turbo binding here, GIL released) in `--workers` threads into one preallocated array. No DCT scaling:
  the largest multi-scale crop is the stored short side itself, so a 1/2-scaled decode would be smaller than 224 px.

Clips/s per core = views delivered / CPU-seconds of every process involved (this process and all its descendants:
DataLoader workers, Ray's raylet, GCS and task workers), after the first batch. Unlike a wall-clock rate it does not
move when other jobs share the machine. Bytes per clip: for the reference, the video's packets from the keyframe at
or before the clip's first frame to its last frame (what a seek-and-decode must read and decode); for shards, the
clip row's JPEG bytes. Memory: the peak RSS (kernel high-water mark) and USS of each process, by role. Where the Ray
arm's CPU goes: ms per view delivered, by part (decode tasks, split coordinator, consumer, Ray's daemons and actors),
over the counted window. The object store is pre-faulted (`preallocate_plasma_memory`), as a long run's store is
after its first minutes.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from processes import Watch, snapshot, tree_cpu  # bench/ is on the path when a script runs
from tables import table

from trainer.data import SampleSpec, auto_block_mb, build_dataset, clips_per_block, decode_batch, sample_nbytes
from trainer.plan import EpochPlan, ShardIndex
from videomae.augment import train_frames
from videomae.masks import MaskingConfig, sample_masks
from videomae.shards import read_clips
from videomae.video import jpegbox

MASKS = MaskingConfig(encoder="tube", encoder_ratio=0.9, decoder="running_cell", decoder_ratio=0.5)


def spec_for(img_size: int, num_frames: int, num_sample: int) -> SampleSpec:
    side = img_size // 16
    return SampleSpec(img_size=img_size, num_frames=num_frames, frame_step=1, num_sample=num_sample,
                      scales=(1.0, 0.875, 0.75, 0.66), seed=0, grid=(num_frames // 2, side, side), masks=MASKS)


def consume(batch: dict[str, torch.Tensor]) -> int:
    """The training loop's side: a batch of uint8 views with their masks, as it reaches the worker (normalising is
    the worker's device's job, `trainer.data.to_device`, the same on every arm). Returns views consumed."""
    clip = batch["clip"]
    if clip.dtype != torch.uint8 or clip.shape[0] != batch["enc_mask"].shape[0]:
        raise ValueError(f"unexpected batch {clip.dtype} {tuple(clip.shape)}")
    return int(clip.shape[0])


def measure(batches, views: int, warmup: int = 4, mark=None, watch: Watch | None = None) -> dict:
    """Steady state after `warmup` batches (start-up and the read-ahead filling up are paid before the window; in
    the window, read-ahead stays full, so the work done in it is the work of the views consumed): views/s (wall),
    CPU-seconds of the process tree (less what `watch`'s sampling thread used), views per CPU-second. `mark()` is
    called as the window opens and closes."""
    t_start = time.perf_counter()
    consume(next(batches))
    first = time.perf_counter() - t_start
    for _ in range(warmup - 1):
        consume(next(batches))
    if mark:
        mark()
    own0 = watch.own_cpu_s if watch else 0.0
    cpu0, t0, seen = tree_cpu(), time.perf_counter(), 0
    for batch in batches:
        seen += consume(batch)
        if seen >= views:
            break
    wall, cpu = time.perf_counter() - t0, tree_cpu() - cpu0
    watched = (watch.own_cpu_s if watch else 0.0) - own0
    cpu -= watched
    if mark:
        mark()
    return {"views": seen, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "clips_per_s": seen / wall,
            "clips_per_core_s": seen / cpu, "first_batch_s": round(first, 3), "watch_cpu_s": round(watched, 3)}


# ------------------------------------------------------------------------------------------------ reference
class VideoClips(torch.utils.data.Dataset):
    """The reference's pre-training dataset: one original video per sample, decoded on demand with decord, then
    `num_sample` views with their masks (its `--num_sample` repeated augmentation)."""

    def __init__(self, rows: list[dict], spec: SampleSpec):
        self.rows, self.spec = rows, spec

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        import decord

        r, s = self.rows[i], self.spec
        vr = decord.VideoReader(r["uri"], num_threads=1)
        frames = vr.get_batch([r["start_frame"] + k * r["stride"] for k in range(s.num_frames)]).asnumpy()
        out = np.empty((s.num_sample, s.num_frames, s.img_size, s.img_size, 3), dtype=np.uint8)
        enc, dec = [], []
        for k in range(s.num_sample):
            rng = np.random.default_rng([s.seed, i, k])
            train_frames(frames, s.img_size, rng, s.scales, out=out[k])  # as ours: straight into the batch
            e, d = sample_masks(s.masks, s.grid, 1, rng)
            enc.append(e[0])
            dec.append(d[0])
        return torch.from_numpy(out), torch.from_numpy(np.stack(enc)), torch.from_numpy(np.stack(dec))


def _collate(items):
    clips, enc, dec = zip(*items, strict=True)
    return {"clip": torch.cat(clips), "enc_mask": torch.cat(enc), "dec_mask": torch.cat(dec)}


def video_rows(shards: str) -> list[dict]:
    clips = read_clips(shards, columns=["video_id", "start_frame", "stride"]).to_pylist()
    videos = pq.read_table(f"{shards}/videos.parquet", columns=["video_id", "uri"]).to_pylist()
    uris = {v["video_id"]: v["uri"].removeprefix("file://") for v in videos}
    return [{**c, "uri": uris[c["video_id"]]} for c in clips]


def bench_reference(rows: list[dict], spec: SampleSpec, views: int, batch: int, workers: int) -> dict:
    clips_needed = -(-views // spec.num_sample) + batch * 8
    order = (rows * (clips_needed // len(rows) + 1))[:clips_needed]
    loader = torch.utils.data.DataLoader(VideoClips(order, spec), batch_size=batch, num_workers=workers,
                                         shuffle=False, collate_fn=_collate, prefetch_factor=2)
    with Watch() as watch:
        out = measure(iter(loader), views, watch=watch)
    return {**out, "memory_mb": watch.peaks()}


def packet_bytes(rows: list[dict]) -> float:
    """Mean bytes of video packets a seek-and-decode of each clip reads: keyframe at or before the first frame
    through the clip's last frame (decode order = presentation order for these files' GOPs, B-frames aside)."""
    import av

    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    total = []
    for r in rows:
        if r["uri"] not in cache:
            with av.open(r["uri"]) as c:
                pk = sorted((p.pts, p.size, p.is_keyframe) for p in c.demux(video=0) if p.pts is not None)
            cache[r["uri"]] = (np.array([p[1] for p in pk]), np.array([p[2] for p in pk], dtype=bool))
        sizes, keys = cache[r["uri"]]
        first, last = r["start_frame"], min(r["start_frame"] + 15 * r["stride"], len(sizes) - 1)
        key = int(np.flatnonzero(keys[:first + 1])[-1]) if keys[:first + 1].any() else 0
        total.append(int(sizes[key:last + 1].sum()))
    return float(np.mean(total))


# ------------------------------------------------------------------------------------------------ ours
def bench_ours_ray(shards: str, spec: SampleSpec, views: int, batch: int, buffer_mb: int,
                   block_mb: float | None) -> dict:
    plan = EpochPlan(ShardIndex.build([shards], None), seed=0)
    ahead = -(-buffer_mb * 2**20 // (batch * spec.num_sample * sample_nbytes(spec)))  # batches the read-ahead holds
    warmup = 4 + ahead  # until the read-ahead is full
    # Enough clips for the warm-up, the counted window and a full read-ahead behind it (at its end), plus a block.
    block = clips_per_block(spec, batch, block_mb or auto_block_mb(buffer_mb))
    clips = (warmup + -(-views // (spec.num_sample * batch)) + ahead) * batch + block
    ds = build_dataset(plan, spec, 0, clips, batch_size=batch, cpus_per_task=1.0, buffer_mb=buffer_mb,
                       block_mb=block_mb)
    ds = ds.streaming_split(1, equal=False)[0]  # as trainer/data.py worker_batches: the executor in its own actor
    marks: list[dict] = []
    with Watch() as watch:
        batches = iter(ds.iter_torch_batches(batch_size=batch * spec.num_sample, prefetch_batches=2))
        try:
            out = measure(batches, views, warmup, mark=lambda: marks.append(snapshot()), watch=watch)
        finally:  # while Ray is up: a generator finalised after ray.shutdown() takes the process down with it
            batches.close()
    parts = cpu_by_part(*marks, out["views"], {pid: rec["roles"] for pid, rec in watch.seen.items()})
    parts["consumer"] = round(parts["consumer"] - 1e3 * out["watch_cpu_s"] / out["views"], 3)  # not the Watch's
    return {**out, "memory_mb": watch.peaks(), "cpu_ms_per_view": parts}


def part(role: str) -> str:
    """Which part of the Ray data path a process is, from its title."""
    if "MapBatches" in role or "ReadRange" in role:
        return "decode tasks"  # read_units and decode_batch, often in the same worker process in turn
    if "SplitCoordinator" in role:
        return "split coordinator"  # the streaming executor, in its own actor (trainer/data.py worker_batches)
    return "Ray's daemons and actors"  # raylet, GCS, agents, Ray Data's stats and autoscaling actors, idle workers


def cpu_by_part(start: dict[int, dict], end: dict[int, dict], views: int,
                roles: dict[int, set[str]] | None = None) -> dict[str, float]:
    """CPU ms per view delivered, by part of the data path, over the counted window (two `snapshot()`s). A Ray
    worker's title is its current task: a process is named by every title it had (`roles`, the Watch's samples, and
    the two marks), so a decode worker idle at both marks still counts as a decode task."""
    out: dict[str, float] = {}
    for pid, rec in end.items():
        before = start.get(pid, {"cpu_s": 0.0, "role": rec["role"]})
        titles = {rec["role"], before["role"], *(roles or {}).get(pid, ())}
        kinds = {part(t) for t in titles if t != "ray::IDLE"}
        if pid == os.getpid():
            key = "consumer"  # this process: iter_torch_batches, as a training worker
        elif "decode tasks" in kinds:
            key = "decode tasks"
        elif "split coordinator" in kinds:
            key = "split coordinator"
        else:
            key = "Ray's daemons and actors"
        out[key] = out.get(key, 0.0) + 1e3 * (rec["cpu_s"] - before["cpu_s"]) / views
    return {k: round(v, 3) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def settle(quiet_cores: float = 0.1, timeout_s: float = 30.0) -> float:
    """Wait until the process tree is idle (below `quiet_cores` of CPU over a second), at most `timeout_s`: a
    finished arm's dataset may still be decoding ahead in its executor, whose CPU would land in the next arm's
    window. Returns the seconds waited."""
    gc.collect()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        c0 = tree_cpu()
        time.sleep(1.0)
        if tree_cpu() - c0 < quiet_cores:
            break
    return time.perf_counter() - t0


def shard_tables(shards: str) -> list:
    """Every clip row of the shards as one-row tables with the columns decode_batch reads (in memory)."""
    t = read_clips(shards, columns=["label", "frames"])
    import pyarrow as pa

    t = t.append_column("seq", pa.array(np.arange(t.num_rows), type=pa.int64()))
    return t


def bench_ours_threads(rows_table, spec: SampleSpec, views: int, batch: int, workers: int,
                       whole_frames: bool = False) -> dict:
    if whole_frames:
        with jpegbox.disabled():
            return bench_ours_threads(rows_table, spec, views, batch, workers)
    n = rows_table.num_rows

    def batches():
        k = 0
        with ThreadPoolExecutor(workers) as pool:
            while True:
                parts = [rows_table.slice((k + j) * batch % n, batch) for j in range(workers * 2)]
                k += workers * 2
                for out in pool.map(lambda p: decode_batch(p, spec), parts):
                    yield {key: torch.from_numpy(v) for key, v in out.items()}

    with Watch() as watch:
        out = measure(batches(), views, watch=watch)
    return {**out, "memory_mb": watch.peaks()}


def bench_limit(frames: list[list[bytes]], views: int, workers: int) -> dict:
    """Bare JPEG decoding of the clips' frames, in threads; one 'view' per decoded clip."""
    import simplejpeg

    h, w, _ = simplejpeg.decode_jpeg_header(frames[0][0])[:2] + (3,)

    def decode(clip: list[bytes]) -> int:
        out = np.empty((len(clip), h, w, 3), dtype=np.uint8)
        for i, f in enumerate(clip):
            hi, wi = simplejpeg.decode_jpeg_header(f)[:2]
            if (hi, wi) == (h, w):
                simplejpeg.decode_jpeg(f, colorspace="RGB", buffer=out[i])
            else:
                simplejpeg.decode_jpeg(f, colorspace="RGB")
        return 1

    def batches():
        k = 0
        with ThreadPoolExecutor(workers) as pool:
            while True:
                chunk = [frames[(k + j) % len(frames)] for j in range(workers * 8)]
                k += len(chunk)
                yield sum(pool.map(decode, chunk))

    it = batches()
    next(it)
    cpu0, t0, seen = tree_cpu(), time.perf_counter(), 0
    for n in it:
        seen += n
        if seen >= views:
            break
    wall, cpu = time.perf_counter() - t0, tree_cpu() - cpu0
    return {"views": seen, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "clips_per_s": seen / wall,
            "clips_per_core_s": seen / cpu}


def breakdown(rows_table, spec: SampleSpec, clips: int = 48) -> dict:
    """Where a decode's CPU goes, one thread, per clip (ms): JPEG decode of whole frames and of the views' bounding box
    (what `decode_batch` decodes with box decoding; whole frames without it), the views' crop+resize (+flip), masks,
    and the whole `decode_batch` (the rest is its bookkeeping: reading the column, stacking, labels)."""
    from trainer.data import decode_views, select_frames
    from videomae.video.frames import decode_jpegs

    frames = rows_table.column("frames").to_pylist()[:clips]
    t = time.thread_time()
    pixels = [decode_jpegs(select_frames(f, spec.num_frames, spec.frame_step)) for f in frames]
    jpeg = time.thread_time() - t
    t = time.thread_time()
    for i, p in enumerate(pixels):
        for k in range(spec.num_sample):
            train_frames(p, spec.img_size, np.random.default_rng([0, i, k]), spec.scales)
    crop = time.thread_time() - t
    t = time.thread_time()
    for i, f in enumerate(frames):  # what decode_batch decodes: the views' bounding box (whole frames without it)
        decode_views(select_frames(f, spec.num_frames, spec.frame_step), spec,
                     [np.random.default_rng([0, i, k]) for k in range(spec.num_sample)])
    box = time.thread_time() - t
    t = time.thread_time()
    for i in range(len(frames) * spec.num_sample):
        sample_masks(spec.masks, spec.grid, 1, np.random.default_rng(i))
    masks = time.thread_time() - t
    t = time.thread_time()
    for i in range(0, len(frames), 4):
        decode_batch(rows_table.slice(i, min(4, len(frames) - i)), spec)
    whole = time.thread_time() - t
    n = len(frames)
    return {"jpeg_ms": 1e3 * jpeg / n, "jpeg_box_ms": 1e3 * box / n, "crop_resize_ms": 1e3 * crop / n,
            "masks_ms": 1e3 * masks / n,
            "decode_batch_ms": 1e3 * whole / n}


# ------------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", required=True, help="the folder bench/realistic_videos.py made (inputs.json)")
    ap.add_argument("--kinds", nargs="+", default=None)
    ap.add_argument("--num-sample", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--views", type=int, default=480, help="views counted per arm after the warm-up batches")
    ap.add_argument("--buffer-mb", type=int, default=1024, help="Ray Data's read-ahead (data.buffer_mb)")
    ap.add_argument("--block-mb", type=float, default=0.0,
                    help="decode output block (data.block_mb); 0: as the trainer, an eighth of --buffer-mb")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4, help="clips per batch (x num_sample views)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    inputs = json.loads((Path(args.inputs) / "inputs.json").read_text())
    kinds = args.kinds or list(inputs)
    results: list[dict] = []
    print(f"{len(kinds)} input kinds, num_sample {args.num_sample}, {args.views} views per arm, {args.workers} "
          f"workers, {os.cpu_count()} CPUs", file=sys.stderr)
    # Ray last: its daemons would otherwise add their idle CPU to the other arms' process trees.
    for kind in kinds:
        shards = inputs[kind]["shards"]
        clips_table = shard_tables(shards)
        frames = clips_table.column("frames").to_pylist()
        jpeg_bytes = float(np.mean([sum(len(f) for f in clip) for clip in frames]))
        rows = video_rows(shards)
        ref_bytes = packet_bytes(rows)
        base = {"kind": kind, "shards": shards, "stored": list(np.asarray(
            __import__("simplejpeg").decode_jpeg_header(frames[0][0])[:2]).tolist())}
        limit = bench_limit(frames, max(args.views, 96), args.workers)
        results.append({**base, "arm": "limit", "num_sample": 0, "bytes_per_clip": jpeg_bytes, **limit})
        print(f"{kind} limit: {limit['clips_per_core_s']:.1f} clips/s per core", file=sys.stderr)
        for ns in args.num_sample:
            spec = spec_for(args.img_size, args.frames, ns)
            arms = [("ours in-process", functools.partial(bench_ours_threads, clips_table, spec, args.views,
                                                          args.batch, args.workers), jpeg_bytes)]
            if jpegbox.available():
                arms.append(("ours in-process, whole frames", functools.partial(
                    bench_ours_threads, clips_table, spec, args.views, args.batch, args.workers, True), jpeg_bytes))
            if not args.skip_reference:
                arms.insert(0, ("reference", functools.partial(bench_reference, rows, spec, args.views, args.batch,
                                                               args.workers), ref_bytes))
            results.append({**base, "arm": "breakdown", "num_sample": ns, **breakdown(clips_table, spec)})
            for arm, run, nbytes in arms:
                r = run()
                results.append({**base, "arm": arm, "num_sample": ns, "bytes_per_clip": nbytes, **r})
                print(f"{kind} ns={ns} {arm}: {r['clips_per_core_s']:.1f} clips/s per core", file=sys.stderr)
    import ray

    # The store's pages pre-faulted at start: a long training run touches each page once in its first minutes, and
    # a counted window of a few GB would otherwise pay that first touch (the kernel zero-filling fresh shared pages:
    # 1-2 ms of the decode tasks' CPU per 224-px view) as if it were the steady state.
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
             object_store_memory=max(1024, 2 * args.buffer_mb) * 2**20,
             _system_config={"preallocate_plasma_memory": True})
    for kind in kinds:
        shards = inputs[kind]["shards"]
        jpeg_bytes = next(r["bytes_per_clip"] for r in results if r["kind"] == kind and r["arm"] == "limit")
        for ns in args.num_sample:
            spec = spec_for(args.img_size, args.frames, ns)
            waited = settle()
            r = bench_ours_ray(shards, spec, args.views, args.batch, args.buffer_mb, args.block_mb or None)
            r["settled_s"] = round(waited, 1)
            results.append({"kind": kind, "shards": shards, "arm": "ours (Ray Data)", "num_sample": ns,
                            "bytes_per_clip": jpeg_bytes, **r})
            print(f"{kind} ns={ns} ours (Ray Data): {r['clips_per_core_s']:.1f} clips/s per core", file=sys.stderr)
    gc.collect()  # the datasets' iterators and actor handles go while Ray is up (after ray.shutdown() they exit us)
    ray.shutdown()
    summary = summarise(results)
    report = {"machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                          "load_avg": os.getloadavg()},
              "settings": {"img_size": args.img_size, "frames": args.frames, "batch": args.batch,
                           "workers": args.workers, "views": args.views, "masks": MASKS.model_dump()},
              "rows": results, "summary": summary}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def summarise(results: list[dict]) -> list[dict]:
    """One row per (kind, num_sample): clips/s per core of each arm, ours / reference and ours / limit."""
    out = []
    by = {(r["kind"], r["arm"], r["num_sample"]): r for r in results}
    for kind in dict.fromkeys(r["kind"] for r in results):
        limit = by[(kind, "limit", 0)]
        for ns in sorted({r["num_sample"] for r in results if r["kind"] == kind and r["num_sample"]}):
            ref = by.get((kind, "reference", ns))
            ray_ = by.get((kind, "ours (Ray Data)", ns))
            thr = by.get((kind, "ours in-process", ns))
            whole = by.get((kind, "ours in-process, whole frames", ns))
            row = {"kind": kind, "num_sample": ns,
                   "reference": ref and ref["clips_per_core_s"], "ours_ray": ray_ and ray_["clips_per_core_s"],
                   "ours_in_process": thr and thr["clips_per_core_s"],
                   "ours_in_process_whole_frames": whole and whole["clips_per_core_s"],
                   "limit_views": limit["clips_per_core_s"] * ns,
                   "ref_bytes": ref and ref["bytes_per_clip"], "shard_bytes": limit["bytes_per_clip"]}
            if ref and ray_:
                row["ours_vs_reference"] = ray_["clips_per_core_s"] / ref["clips_per_core_s"]
            if ray_:
                row["ours_vs_limit"] = ray_["clips_per_core_s"] / row["limit_views"]
            if thr:
                row["in_process_vs_limit"] = thr["clips_per_core_s"] / row["limit_views"]
            row["breakdown_ms"] = {k: v for k, v in by.get((kind, "breakdown", ns), {}).items() if k.endswith("_ms")}
            row["ray_cpu_ms_per_view"] = (ray_ or {}).get("cpu_ms_per_view", {})
            out.append(row)
    def fmt(v, p=1):
        return "-" if v is None else f"{v:.{p}f}"

    print(table([{"input": r["kind"], "num_sample": r["num_sample"], "reference": fmt(r["reference"]),
                  "ours (Ray)": fmt(r["ours_ray"]), "ours in-process": fmt(r["ours_in_process"]),
                  "in-process whole frames": fmt(r["ours_in_process_whole_frames"]),
                  "limit": fmt(r["limit_views"]), "ours/ref": fmt(r.get("ours_vs_reference"), 2) + "x",
                  "ours/limit": f"{100 * r['ours_vs_limit']:.0f}%" if "ours_vs_limit" in r else "-",
                  "ref kB/clip": fmt(r["ref_bytes"] and r["ref_bytes"] / 1e3, 0),
                  "shard kB/clip": fmt(r["shard_bytes"] / 1e3, 0)} for r in out]))
    print(table([{"input": r["kind"], "num_sample": r["num_sample"],
                  **{k.removesuffix("_ms") + " ms/clip": f"{v:.2f}" for k, v in r["breakdown_ms"].items()}}
                 for r in out if r["breakdown_ms"]]))
    parts = list(dict.fromkeys(k for r in out for k in r["ray_cpu_ms_per_view"]))
    print(table([{"input": r["kind"], "num_sample": r["num_sample"],
                  **{f"{k} ms/view": fmt(r["ray_cpu_ms_per_view"].get(k), 2) for k in parts}}
                 for r in out if r["ray_cpu_ms_per_view"]]))
    print("clips/s per CPU core (views delivered per CPU-second of every process involved); limit = bare JPEG "
          "decode of the same rows x num_sample (a decode feeds num_sample views)")
    return out


if __name__ == "__main__":
    main()
