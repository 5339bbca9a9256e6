"""The training data path on Ray Data: clip shards -> JPEG decode -> augmentation -> repeats with masks -> batches.

    range(units) --read_units--> clip rows (frames as JPEG, label, seq) --decode_batch--> samples --> workers

- `read_units` reads one unit (a few Parquet row groups) in the plan's seeded row order across them (trainer/plan.py)
  and tags every row with its global sequence number `seq`, the data position.
- `decode_batch` decodes the JPEG frames and makes `num_sample` training samples per clip (the reference's repeated
  augmentation, `--num_sample`): each with its own multi-scale crop and, for pre-training, its own encoder/decoder
  masks. All randomness comes from `numpy.random.default_rng([seed, seq, repeat])`, so a sample is the same whichever
  task decodes it and whenever, which makes the first step of a seeded run reproducible and a resume exact.
- Both maps are Ray *tasks* (not an actor pool): beside a running trainer on a small machine an actor pool can hold
  every CPU and deadlock; tasks give CPUs back between batches. `data.cpus_per_task`/`data.max_tasks` bound them.

The trainer never opens an original video: the shards hold everything (docs/architecture.md "Clip shards").
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from trainer.config import DataSection, PostpretrainConfig, PretrainConfig
from trainer.plan import EpochPlan
from videomae import storage
from videomae.augment import train_clip
from videomae.masks import MaskingConfig, sample_masks
from videomae.video.frames import decode_jpegs

log = logging.getLogger(__name__)

_READ_COLUMNS = ["clip_id", "video_id", "source", "label", "frames"]


@dataclass(frozen=True)
class SampleSpec:
    """What the decode step needs to turn a stored clip into training samples."""

    img_size: int
    num_frames: int
    frame_step: int
    num_sample: int
    scales: tuple[float, ...]
    seed: int
    grid: tuple[int, int, int]
    masks: MaskingConfig | None = None  # None: supervised (no masks)
    flip: bool = False
    rand_aug: str | None = None

    @classmethod
    def from_config(cls, cfg: PretrainConfig | PostpretrainConfig) -> SampleSpec:
        """Pre-training: masks per sample; post-pre-training: the supervised augmentation."""
        arch, data = cfg.model.architecture(), cfg.data
        augment = cfg.augment if isinstance(cfg, PostpretrainConfig) else None
        return cls(img_size=arch.img_size, num_frames=arch.num_frames, frame_step=data.frame_step,
                   num_sample=data.num_sample, scales=tuple(data.scales), seed=cfg.run.seed, grid=arch.grid,
                   masks=cfg.mask if isinstance(cfg, PretrainConfig) else None,
                   flip=bool(augment and augment.flip), rand_aug=augment.rand_augment if augment else None)


def select_frames(frames: list[bytes], num_frames: int, frame_step: int) -> list[bytes]:
    """Every `frame_step`-th stored frame, `num_frames` of them; a short clip repeats its last frame (the
    reference's loaders clamp indices past the end the same way)."""
    picked = frames[::frame_step][:num_frames]
    if not picked:
        raise ValueError("a clip with no frames")
    return picked + [picked[-1]] * (num_frames - len(picked))


def read_units(batch: dict[str, np.ndarray], plan: EpochPlan, first_unit: int, skip: int) -> pa.Table:
    """Run units (offsets from `first_unit`) -> their clip rows in plan order, with `seq`. The first unit of the run
    drops its first `skip` rows: they were consumed before the checkpoint this run resumes from."""
    tables = []
    for offset in batch["id"]:
        u = first_unit + int(offset)
        unit = plan.unit(u)
        parts = []
        for chunk in unit.chunks:
            with storage.open_file(chunk.file, "rb", plan.index.options) as fh:
                t = pq.ParquetFile(fh).read_row_group(chunk.row_group, columns=_READ_COLUMNS)
            t = t.take(pa.array(chunk.rows))
            parts.append(t.append_column("dataset", pa.array(np.full(t.num_rows, chunk.dataset), type=pa.int32())))
        t = pa.concat_tables(parts).take(pa.array(unit.order))
        base = plan.unit_base(u)
        t = t.append_column("seq", pa.array(np.arange(base, base + t.num_rows), type=pa.int64()))
        if u == first_unit and skip:
            t = t.slice(skip)
        tables.append(t)
    return pa.concat_tables(tables)


def decode_batch(table: pa.Table, spec: SampleSpec) -> dict[str, np.ndarray]:
    """Clip rows -> `num_sample` samples per clip: clip (B*R, 3, T, S, S) float32, label, seq, repeat and, for
    pre-training, enc_mask/dec_mask (B*R, N) bool (True = hidden from the encoder / decoded; docs/architecture.md)."""
    # One intra-op thread per task, as torch's DataLoader sets in its workers: Ray schedules tasks per CPU, and a task
    # spawning a thread per core would fight the other tasks and the trainer for them.
    torch.set_num_threads(1)
    frames_col = table.column("frames").to_pylist()
    labels = table.column("label").fill_null(-1).to_numpy().astype(np.int64)
    seqs = table.column("seq").to_numpy()
    clips, out_labels, out_seq, repeats, enc, dec = [], [], [], [], [], []
    for frames, label, seq in zip(frames_col, labels, seqs, strict=True):
        pixels = decode_jpegs(select_frames(frames, spec.num_frames, spec.frame_step))  # (T, H, W, 3) uint8
        for r in range(spec.num_sample):
            rng = np.random.default_rng([spec.seed, int(seq), r])
            clips.append(train_clip(pixels, spec.img_size, rng, spec.scales, spec.flip, spec.rand_aug).numpy())
            if spec.masks is not None:
                e, d = sample_masks(spec.masks, spec.grid, 1, rng)  # (1, N) each
                enc.append(e[0])
                dec.append(d[0])
            out_labels.append(label)
            out_seq.append(seq)
            repeats.append(r)
    out = {
        "clip": np.stack(clips).astype(np.float32),  # (B*R, 3, T, S, S)
        "label": np.asarray(out_labels, dtype=np.int64),
        "seq": np.asarray(out_seq, dtype=np.int64),
        "repeat": np.asarray(repeats, dtype=np.int64),
    }
    if spec.masks is not None:
        out["enc_mask"] = np.stack(enc)  # (B*R, N)
        out["dec_mask"] = np.stack(dec)  # (B*R, N)
    return out


def build_dataset(plan: EpochPlan, spec: SampleSpec, start_seq: int, end_seq: int, *, batch_size: int,
                  cpus_per_task: float = 1.0, max_tasks: int | None = None, buffer_mb: int = 1024):
    """The Ray Dataset of samples for data positions [start_seq, end_seq) (a little more at the chunk edges)."""
    import ray.data
    from ray.data import ExecutionResources

    first_unit, skip, _ = plan.locate(start_seq)
    last_unit, _, _ = plan.locate(max(end_seq - 1, start_seq))
    n_units = last_unit - first_unit + 1
    ds = ray.data.range(n_units, override_num_blocks=min(n_units, 200))
    ds = ds.map_batches(functools.partial(read_units, plan=plan, first_unit=first_unit, skip=skip), batch_size=1,
                        batch_format="numpy", num_cpus=min(cpus_per_task, 0.5), concurrency=max_tasks)
    ds = ds.map_batches(functools.partial(decode_batch, spec=spec), batch_size=batch_size, batch_format="pyarrow",
                        num_cpus=cpus_per_task, concurrency=max_tasks)
    # Decoded float clips are large: without a cap Ray Data runs ahead of training into a share of the object store
    # (and node memory) far beyond the few batches the trainer needs.
    ds.context.execution_options.resource_limits = ExecutionResources.for_limits(
        object_store_memory=buffer_mb * 1024 * 1024)
    # Ray Train executes this dataset in its own process, with this context (not the driver's): no per-operator
    # progress bars there, whose terminal escapes filled job logs; the loop logs its own progress.
    ds.context.enable_progress_bars = False
    return ds


@dataclass
class ResumableDataset:
    """A dataset factory for TorchTrainer(datasets={"train": ...}). Ray Train V2 calls it each time it starts a
    worker group (first start, and every restart after a worker failure), so the stream begins at the data position of
    the checkpoint the workers will restore: the position continues instead of restarting."""

    plan: EpochPlan
    spec: SampleSpec
    run_dir: str
    end_seq: int
    data: DataSection  # batch size and the Ray Data limits
    run_options: dict = field(default_factory=dict)  # storage options of the run directory

    def __call__(self):
        from trainer.checkpointing import latest_position

        start = latest_position(self.run_dir, self.run_options).get("samples_seen", 0)
        log.info("data stream starts at position %d of %d", start, self.end_seq)
        d = self.data
        return build_dataset(self.plan, self.spec, start, self.end_seq, batch_size=d.batch_size,
                             cpus_per_task=d.cpus_per_task, max_tasks=d.max_tasks, buffer_mb=d.buffer_mb)
