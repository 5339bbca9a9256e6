"""Loader benchmark: training clips/s delivered from clip shards (Ray Data) vs decoding the original videos per sample.

    python bench/loader.py --shards data/sample/shards [--clips 200] [--img-size 64] [--json out.json]

Both sides produce the same samples for the same clips (the clip rows of the shards' train split): multi-scale crop
to the input size, normalisation, encoder/decoder masks.
- shards: the trainer's own path (trainer/data.py): Parquet chunks -> JPEG decode -> augment -> masks, as Ray Data
  tasks, consumed with iter_torch_batches as a training worker does.
- videos: the reference's way (OpenGVLab/VideoMAEv2 `dataset/pretrain_datasets.py`): per sample, open the original
  video with decord (PyAV fallback), seek and decode the clip's frames at full size, then the same augmentation;
  a torch DataLoader with the same number of worker processes.
Both run in this process's turn, on this machine, and the table reports the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from trainer.data import SampleSpec, build_dataset
from trainer.plan import EpochPlan, ShardIndex
from videomae.augment import train_clip
from videomae.masks import MaskingConfig, sample_masks
from videomae.shards import read_clips, read_json
from videomae.video import decode_frames


def spec_for(img_size: int, num_frames: int) -> SampleSpec:
    side = img_size // 16
    return SampleSpec(img_size=img_size, num_frames=num_frames, frame_step=1, num_sample=1,
                      scales=(1.0, 0.875, 0.75, 0.66), seed=0, grid=(num_frames // 2, side, side),
                      masks=MaskingConfig())


def bench_shards(shards: str, n: int, spec: SampleSpec, batch: int, workers: int) -> tuple[float, float]:
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    DataContext.get_current().enable_progress_bars = False
    plan = EpochPlan(ShardIndex.build([shards], "train"), seed=0)
    ds = build_dataset(plan, spec, 0, n + batch, batch_size=batch, cpus_per_task=1.0)
    return _steady_rate((b["clip"] for b in ds.iter_torch_batches(batch_size=batch)), n)


def _steady_rate(batches, n: int) -> tuple[float, float]:
    """(clips/s after the first batch, seconds to the first batch): start-up (Ray's executor, DataLoader worker
    processes) is paid once per run, not per clip, so it is reported apart."""
    t_start = time.perf_counter()
    first = next(batches)
    t0, seen = time.perf_counter(), 0
    for clip in batches:
        seen += clip.shape[0]
        if seen >= n:
            break
    del first
    return seen / (time.perf_counter() - t0), t0 - t_start


class VideoClips(torch.utils.data.Dataset):
    """The reference's pre-training dataset shape: one original video per sample, decoded on demand."""

    def __init__(self, rows: list[dict], spec: SampleSpec):
        self.rows, self.spec = rows, spec

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        r, s = self.rows[i], self.spec
        idx = [r["start_frame"] + k * r["stride"] for k in range(s.num_frames)]
        frames = decode_frames(r["uri"], idx)  # (T, H, W, 3), full size
        rng = np.random.default_rng([s.seed, i])
        clip = train_clip(frames, s.img_size, rng, s.scales)
        enc, dec = sample_masks(s.masks, s.grid, 1, rng)
        return clip, torch.from_numpy(enc[0]), torch.from_numpy(dec[0])


def bench_videos(shards: str, n: int, spec: SampleSpec, batch: int, workers: int) -> tuple[float, float]:
    clips = read_clips(shards, columns=["video_id", "start_frame", "stride", "split"], split="train").to_pylist()
    import pyarrow.parquet as pq

    videos = pq.read_table(f"{shards}/videos.parquet", columns=["video_id", "uri"]).to_pylist()
    uris = {v["video_id"]: v["uri"].removeprefix("file://") for v in videos}
    rows = [{**c, "uri": uris[c["video_id"]]} for c in clips]
    rows = (rows * ((n + batch) // len(rows) + 1))[:n + batch]
    loader = torch.utils.data.DataLoader(VideoClips(rows, spec), batch_size=batch, num_workers=workers,
                                         shuffle=True, persistent_workers=False)
    return _steady_rate((clip for clip, _, _ in loader), n)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", required=True)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--img-size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    spec = spec_for(args.img_size, args.frames)
    manifest = read_json(args.shards, "manifest.json")
    videos, videos_start = bench_videos(args.shards, args.clips, spec, args.batch, args.workers)
    shards, shards_start = bench_shards(args.shards, args.clips, spec, args.batch, args.workers)
    result = {"clips": args.clips, "img_size": args.img_size, "frames": args.frames, "workers": args.workers,
              "cpus": os.cpu_count(), "videos_clips_per_s": videos, "shards_clips_per_s": shards,
              "videos_first_batch_s": videos_start, "shards_first_batch_s": shards_start,
              "ratio": shards / videos, "dataset": args.shards, "manifest_created_at": manifest.get("created_at")}
    rows = [("original videos, decode per sample (reference)", videos, videos_start),
            ("clip shards, Ray Data (ours)", shards, shards_start)]
    width = max(len(r[0]) for r in rows)
    print(f"{'loader':<{width}}  clips/s  first batch (s)")
    for name, v, s0 in rows:
        print(f"{name:<{width}}  {v:7.1f}  {s0:15.2f}")
    print(f"{'ratio shards / videos (clips/s)':<{width}}  {shards / videos:6.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
