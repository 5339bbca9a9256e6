"""The training data path on real Ray Data, as a worker reads it (trainer/data.py worker_batches): the samples arrive in
the plan's order through the `streaming_split` coordinator, and the decoded read-ahead stays inside `data.buffer_mb`
of the object store (nothing spilled to disk)."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from trainer_testlib import REPO

from trainer.config import load_config
from trainer.data import (
    SampleSpec,
    auto_block_mb,
    build_dataset,
    clips_per_block,
    row_nbytes,
    sample_nbytes,
    worker_batches,
)
from trainer.plan import EpochPlan, ShardIndex

pytestmark = pytest.mark.slow


def _config(shards, *overrides):
    return load_config("postpretrain", REPO / "configs/postpretrain/tiny.yaml",
                       [f"data.path={shards}", "model.preset=nano", *overrides])


def _object_store() -> tuple[int, int]:
    """(MiB in the object store now, MiB spilled so far) as the raylet reports them."""
    import ray
    from ray._private.internal_api import memory_summary

    # This session's own cluster, by address: without one, Ray looks for "the" local instance and refuses when another
    # job on the machine runs its own.
    s = memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True)
    used = re.search(r"Plasma memory usage (\d+) MiB", s)
    spilled = re.search(r"Spilled (\d+) MiB", s)
    return int(used.group(1)) if used else 0, int(spilled.group(1)) if spilled else 0


def test_worker_batches_follow_the_plan_in_order(ray_session, sample_shards):
    cfg = _config(sample_shards, "data.batch_size=8")
    spec = SampleSpec.from_config(cfg)
    plan = EpochPlan(ShardIndex.build([str(sample_shards)], "train"), seed=cfg.run.seed)
    start = 40  # clips already consumed: a resume reads on from there
    batches = list(worker_batches(plan, spec, cfg.data, streams=1, rank=0, world=1, samples_seen=start,
                                  samples_end=start + 8 * 6, prefetch=2))
    assert len(batches) == 6
    seqs = np.concatenate([b["seq"].numpy() for b in batches])
    assert seqs.tolist() == list(range(start, start + 48))
    clip = batches[0]["clip"]
    assert clip.dtype.is_floating_point is False and tuple(clip.shape) == (8, spec.num_frames, spec.img_size,
                                                                             spec.img_size, 3)


def test_read_ahead_stays_inside_the_buffer(ray_session, sample_shards):
    # A stalled consumer lets Ray Data run ahead as far as `buffer_mb` allows: at three stalls, once the read-ahead has
    # filled and what was consumed is freed, the object store holds the cap and the consumer's prefetch, no more. With
    # the batches joined into Ray Data's default 128 MiB blocks, a 256 MB cap held 336 MiB of nano clips and a CI run's
    # training spilled to disk.
    buffer_mb, batch = 64, 16
    cfg = _config(sample_shards)
    spec = SampleSpec.from_config(cfg)
    plan = EpochPlan(ShardIndex.build([str(sample_shards)], "train"), seed=0)
    batch_mb = batch * spec.num_sample * sample_nbytes(spec) / 2**20
    block_mb = clips_per_block(spec, batch, auto_block_mb(buffer_mb)) * spec.num_sample * sample_nbytes(spec) / 2**20
    steps = int(4 * buffer_mb / batch_mb)  # the whole run is 4x the buffer
    ds = build_dataset(plan, spec, 0, batch * steps, batch_size=batch, cpus_per_task=0.5, max_tasks=1,
                       buffer_mb=buffer_mb)
    base, spilled0 = _object_store()
    held, seen = [], 0
    it = ds.streaming_split(1, equal=False)[0].iter_torch_batches(batch_size=batch, drop_last=True, prefetch_batches=2)
    for i, b in enumerate(it):
        seen += len(b["seq"])
        if i in (5, steps // 3, 2 * steps // 3):
            time.sleep(3.0)
            held.append(_object_store()[0] - base)
    assert seen == batch * steps
    # Filled: a real share of the cap is held at a stall (the read-ahead works), and never more than the cap plus the
    # blocks in flight and the batches the consumer prefetches (255 MiB with Ray Data's 128 MiB blocks).
    print("held MiB at the stalls", held, "cap", buffer_mb, "block", block_mb)
    assert max(held) >= buffer_mb / 4, held
    assert max(held) <= buffer_mb + 4 * block_mb + 2 * batch_mb + 8, (held, buffer_mb, block_mb)
    assert _object_store()[1] == spilled0


def test_each_decode_batch_is_one_block_in_one_piece(ray_session, sample_shards):
    # The consumer's batcher copies a block of several Arrow chunks whole before it slices steps off it, and a step
    # that straddles two blocks is copied again: each decode batch must reach it as its own block, in one chunk, also
    # where one decode task turns several batches (here 4 clips x 2 views each, from row groups of dozens of clips).
    # With the block target at a batch plus 1 MiB, the batches of a task were joined: blocks of 2-4 chunks.
    cfg = load_config("pretrain", REPO / "configs/pretrain/tiny.yaml", [f"data.path={sample_shards}",
                                                                       "model.preset=nano"])
    spec = SampleSpec.from_config(cfg)
    assert spec.masks is not None and spec.num_sample == 2  # masks and repeats count in a row's bytes
    batch, clips = 4, 96
    plan = EpochPlan(ShardIndex.build([str(sample_shards)], "train"), seed=0)
    views = clips_per_block(spec, batch, 0.01) * spec.num_sample  # one step's share per decode batch
    assert views == batch * spec.num_sample
    ds = build_dataset(plan, spec, 0, clips, batch_size=batch, cpus_per_task=0.5, max_tasks=1, buffer_mb=64,
                       block_mb=0.01)
    blocks = [(b.num_rows, b.column("clip").num_chunks, b.nbytes)
              for b in ds.iter_batches(batch_size=None, batch_format="pyarrow")]
    print("blocks (rows, chunks, bytes)", blocks)
    assert sum(rows for rows, _, _ in blocks) == clips * spec.num_sample
    assert all(chunks == 1 for _, chunks, _ in blocks), blocks
    assert all(rows <= views for rows, _, _ in blocks), blocks
    assert sum(rows == views for rows, _, _ in blocks) >= len(blocks) - 2, blocks
    # The target's row size is the real one: a full block is `views` rows of it.
    row = row_nbytes(spec)
    assert all(nbytes == rows * row for rows, _, nbytes in blocks), (row, blocks)
