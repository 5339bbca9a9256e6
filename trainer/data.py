"""The training data path on Ray Data: clip shards -> JPEG decode -> augmentation -> repeats with masks -> batches.

    range(pieces) --read_units--> clip rows (frames as JPEG, label, seq) --decode_batch--> samples --> one worker

- Every worker reads its own streams of the plan's order (trainer/plan.py `stream_pieces`), one Ray Dataset per
  stream, started in the worker at the position of the checkpoint it restored (`worker_batches`): a sample is read by
  exactly one worker, a step's global batch does not depend on the number of workers, and a restart neither repeats
  nor skips a sample.
- `read_units` reads one piece of a unit (a few Parquet row groups) in the plan's seeded row order across them and tags
  every row with its global sequence number `seq`, its place in the order.
- `decode_batch` decodes the JPEG frames and makes `num_sample` training samples per clip (the reference's repeated
  augmentation, `--num_sample`): each with its own multi-scale crop and, for pre-training, its own encoder/decoder
  masks. Samples stay uint8 pixels (B*R, T, S, S, 3); the worker's device normalises them (`to_device`), so a
  quarter of the bytes of float clips crosses the object store and the worker's link. All randomness comes from
  `numpy.random.default_rng([seed, seq, repeat])`, so a sample is the same whichever
  task decodes it and whenever, which makes the first step of a seeded run reproducible and a resume exact.
- Both maps are Ray *tasks* (not an actor pool): beside a running trainer on a small machine an actor pool can hold
  every CPU and deadlock; tasks give CPUs back between batches. `data.cpus_per_task`/`data.max_tasks` bound them.

The trainer never opens an original video: the shards hold everything (docs/architecture.md "Clip shards").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from trainer.config import DataSection
from trainer.plan import EpochPlan, Piece
from videomae import storage
from videomae.augment import crop_flip_frames, multi_scale_box, train_frames
from videomae.masks import MaskingConfig, sample_masks
from videomae.transforms import frames_to_input
from videomae.video import jpegbox
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
    def from_config(cls, cfg) -> SampleSpec:
        """From a recipe's config (trainer/config.py): the masks and the augmentation it asks of every sample."""
        arch, data, augment = cfg.model.architecture(), cfg.data, cfg.sample_augment
        return cls(img_size=arch.img_size, num_frames=arch.num_frames, frame_step=data.frame_step,
                   num_sample=data.num_sample, scales=tuple(data.scales), seed=cfg.run.seed, grid=arch.grid,
                   masks=cfg.sample_masks, flip=bool(augment and augment.flip),
                   rand_aug=augment.rand_augment if augment else None)


def select_frames(frames: list[bytes], num_frames: int, frame_step: int) -> list[bytes]:
    """Every `frame_step`-th stored frame, `num_frames` of them; a short clip repeats its last frame (the
    reference's loaders clamp indices past the end the same way)."""
    picked = frames[::frame_step][:num_frames]
    if not picked:
        raise ValueError("a clip with no frames")
    return picked + [picked[-1]] * (num_frames - len(picked))


def read_units(batch: dict[str, np.ndarray], plan: EpochPlan, pieces: tuple[Piece, ...]) -> pa.Table:
    """Pieces (indices into `pieces`) -> their clip rows in plan order, with `seq`."""
    tables = []
    for i in batch["id"]:
        piece = pieces[int(i)]
        u = piece.unit
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
        tables.append(t.slice(piece.start, piece.stop - piece.start))
    return pa.concat_tables(tables)


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_heap_kept = False


def keep_heap() -> bool:
    """Have glibc keep freed memory in this process's heap and serve large buffers from it: no `mmap` per large
    array (`M_MMAP_MAX` 0), no returning the heap's top to the kernel (`M_TRIM_THRESHOLD` 2 GiB, its largest).

    Why: a decode task allocates its output block (up to `data.block_mb`, above glibc's largest mmap threshold of
    32 MiB) and a clip's decoded frames again and again. Served by `mmap` and given back at `free`, every one of
    their pages is a fresh page fault that the kernel zero-fills (numpy asks for huge pages), before we write it
    (bench/loader.py, Kinetics-like, one 224-px view per clip: the decode task's kernel time fell from 1.7-2.5 to
    1.0-1.2 ms per view with this, to 0.4 ms with the object store's pages also touched before; the task's CPU
    from ~11 to ~9.5 ms per view).
    Kept in the heap, the next block reuses the same pages. The cost: the process's RSS stays at its high-water mark
    (one block and a clip's frames, which the task needs again next batch anyway). Linux/glibc only; elsewhere a
    no-op returning False. Once per process."""
    global _heap_kept
    if _heap_kept:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):  # no C library to load, or one without mallopt (macOS)
        mallopt = None
    if mallopt is None:
        return False
    _heap_kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _heap_kept


def decode_views(frames: list[bytes], spec: SampleSpec, rngs: list[np.random.Generator]):
    """A clip's picked JPEG frames and its views' generators -> (pixels, boxes): only the part of the frames that
    the views' crops read (the boxes' bounding box, `jpegbox.decode_box`) with each view's box shifted into it, drawn
    as `train_frames` draws it (`multi_scale_box` on the frame size, first from each view's generator); whole frames
    and the boxes as drawn where a frame is one box decoding refuses. Or (whole frames, None) -- RandAugment (it
    transforms whole frames first), box decoding not built -- and `train_frames` draws the box. The same samples
    every way (tests/trainer/test_plan_data.py)."""
    size = jpegbox.frame_size(frames[0]) if jpegbox.available() and not spec.rand_aug else None
    if size is not None:
        boxes = [multi_scale_box(size[0], size[1], spec.img_size, rng, spec.scales) for rng in rngs]
        top, left = min(b[0] for b in boxes), min(b[1] for b in boxes)
        bottom, right = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
        got = jpegbox.decode_box(frames, size, (top, left, bottom - top, right - left))
        if got is not None:
            pixels, x0 = got  # rows top.., columns x0.. (whole iMCUs around the box)
            return pixels, [(t - top, lt - x0, h, w) for t, lt, h, w in boxes]
        return decode_jpegs(frames), boxes  # refused (a damaged frame, CMYK): whole frames, the boxes as drawn
    return decode_jpegs(frames), None  # (T, H, W, 3) uint8


def decode_batch(table: pa.Table, spec: SampleSpec, *, own_process: bool = False) -> dict[str, np.ndarray]:
    """Clip rows -> `num_sample` samples per clip: clip (B*R, T, S, S, 3) uint8 (cropped, resized, flipped pixels;
    `to_device` makes them model input on the worker), label, seq, repeat and, for pre-training, enc_mask/dec_mask
    (B*R, N) bool (True = hidden from the encoder / decoded; docs/architecture.md). `own_process`: the caller is a
    Ray task's worker process, whose heap policy this may set (`keep_heap`); `build_dataset` says so."""
    # One intra-op thread per task, as torch's DataLoader sets in its workers: Ray schedules tasks per CPU, and a task
    # spawning a thread per core would fight the other tasks and the trainer for them.
    torch.set_num_threads(1)
    if own_process:
        keep_heap()
    frames_col = table.column("frames").to_pylist()
    labels = table.column("label").fill_null(-1).to_numpy().astype(np.int64)
    seqs = table.column("seq").to_numpy()
    rows = len(frames_col) * spec.num_sample
    clips = np.empty((rows, spec.num_frames, spec.img_size, spec.img_size, 3), dtype=np.uint8)
    out_labels, out_seq, repeats, enc, dec = [], [], [], [], []
    for frames, label, seq in zip(frames_col, labels, seqs, strict=True):
        picked = select_frames(frames, spec.num_frames, spec.frame_step)
        rngs = [np.random.default_rng([spec.seed, int(seq), r]) for r in range(spec.num_sample)]
        pixels, boxes = decode_views(picked, spec, rngs)
        for r, rng in enumerate(rngs):
            if boxes is None:
                train_frames(pixels, spec.img_size, rng, spec.scales, spec.flip, spec.rand_aug, out=clips[len(out_seq)])
            else:
                crop_flip_frames(pixels, boxes[r], spec.img_size, rng, spec.flip, out=clips[len(out_seq)])
            if spec.masks is not None:
                e, d = sample_masks(spec.masks, spec.grid, 1, rng)  # (1, N) each
                enc.append(e[0])
                dec.append(d[0])
            out_labels.append(label)
            out_seq.append(seq)
            repeats.append(r)
    return _samples(spec, clips, out_labels, out_seq, repeats, enc, dec)


def _samples(spec: SampleSpec, clips: np.ndarray, labels, seqs, repeats, enc, dec) -> dict[str, np.ndarray]:
    """`decode_batch`'s output columns (one row per view)."""
    out = {
        "clip": clips,  # (B*R, T, S, S, 3) uint8
        "label": np.asarray(labels, dtype=np.int64),
        "seq": np.asarray(seqs, dtype=np.int64),
        "repeat": np.asarray(repeats, dtype=np.int64),
    }
    if spec.masks is not None:
        out["enc_mask"] = np.stack(enc)  # (B*R, N)
        out["dec_mask"] = np.stack(dec)  # (B*R, N)
    return out


def row_nbytes(spec: SampleSpec) -> int:
    """Bytes of one `decode_batch` output row (a view: pixels, masks, label, seq, repeat) as Ray Data sizes the block
    that holds it (the same conversion of a one-row batch; masks are bit-packed there)."""
    from ray.data.block import BlockAccessor

    zeros = np.zeros(int(np.prod(spec.grid)), dtype=bool)
    one = _samples(spec, np.zeros((1, spec.num_frames, spec.img_size, spec.img_size, 3), dtype=np.uint8), [0], [0],
                   [0], [zeros], [zeros])
    return BlockAccessor.for_block(BlockAccessor.batch_to_block(one)).size_bytes()


def block_target_bytes(spec: SampleSpec, views: int) -> int:
    """Ray Data's `target_max_block_size` that makes each decode batch of `views` rows one output block, whole and in
    one piece: half a row under the batch's size. A map task's output buffer emits a block once it holds more than the
    target (a full batch does; a task's shorter last batch waits for the task's end, then goes alone) and slices it
    only above 1.5x the target (never here).

    Why exact: with the target at a batch plus 1 MiB, a task's batches were joined in its buffer (bench/loader.py: 52 +
    44 clips from a 96-row row group, cut at 53 rows): every other block was two Arrow chunks, which the consumer's
    batcher copies whole before slicing steps off it (Ray Data's `try_combine_chunked_columns`), and the 53-row cut
    made a step straddle two blocks (copied again)."""
    row = row_nbytes(spec)
    return views * row - row // 2


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A batch as the data path delivers it (uint8 pixels) -> on the worker's device, with the clip made model input
    there: float (B, 3, T, S, S), normalised. Only uint8 crosses into the worker (4x fewer bytes than float32)."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    out["clip"] = frames_to_input(out["clip"])
    return out


def sample_nbytes(spec: SampleSpec) -> int:
    """Bytes of one decoded sample's pixels (uint8, T x S x S x 3)."""
    return spec.num_frames * spec.img_size ** 2 * 3


def clips_per_block(spec: SampleSpec, share: int, block_mb: float) -> int:
    """Clips one decode task turns into samples: whole step shares (`share` clips) up to `block_mb` of uint8 pixels,
    at least one share, so a step's batch never straddles two blocks (no copy to join them)."""
    shares = int(block_mb * 2**20 // (share * spec.num_sample * sample_nbytes(spec)))
    return share * max(1, shares)


def auto_block_mb(buffer_mb: float) -> float:
    """`data.block_mb` when not set: an eighth of the read-ahead, at most Ray Data's default block (128 MiB). The cap
    stops Ray Data a whole block late, so what the object store holds stays within ~1.5x `buffer_mb`; larger blocks
    cost less per clip (Ray's fixed cost per object)."""
    return min(128.0, buffer_mb / 8)


def build_dataset(plan: EpochPlan, spec: SampleSpec, start: int, end: int, *, batch_size: int, stream: int = 0,
                  streams: int = 1, cpus_per_task: float = 1.0, max_tasks: int | None = None, buffer_mb: int = 1024,
                  block_mb: float | None = None):
    """The Ray Dataset of the samples at positions [start, end) of stream `stream` of `streams` (one stream: the
    plan's order itself, positions = seqs). `batch_size` clips per step share; a decode task turns whole shares, up to
    `block_mb` of pixels (None: `auto_block_mb`), into one output block (`clips_per_block`)."""
    import ray.data
    from ray.data import ExecutionResources

    pieces = tuple(plan.stream_pieces(stream, streams, start, end - start))
    ds = ray.data.range(len(pieces), override_num_blocks=min(len(pieces), 200))
    ds = ds.map_batches(functools.partial(read_units, plan=plan, pieces=pieces), batch_size=1,
                        batch_format="numpy", num_cpus=min(cpus_per_task, 0.5), concurrency=max_tasks)
    decode_clips = clips_per_block(spec, batch_size, auto_block_mb(buffer_mb) if block_mb is None else block_mb)
    ds = ds.map_batches(functools.partial(decode_batch, spec=spec, own_process=True), batch_size=decode_clips,
                        batch_format="pyarrow", num_cpus=cpus_per_task, concurrency=max_tasks)
    # Decoded clips are large (16 x 224^2 x 3 bytes each as uint8): without a cap Ray Data runs ahead of training
    # into a share of the object store (and node memory) far beyond the few batches the trainer needs.
    ds.context.execution_options.resource_limits = ExecutionResources.for_limits(
        object_store_memory=buffer_mb * 1024 * 1024)
    # Pieces in order (a seeded run sees the same first batch; a resume continues the same sequence), whichever task
    # finishes first. Set on the dataset: a worker's own DataContext is not the driver's.
    ds.context.execution_options.preserve_order = True
    # One decode batch per block: Ray Data otherwise joins consecutive batches into 128 MiB blocks whatever the cap, and
    # the cap stops it a whole block late (a 256 MB cap held 336 MiB of nano clips; a CI run's training spilled).
    ds.context.target_max_block_size = block_target_bytes(spec, decode_clips * spec.num_sample)
    ds.context.enable_progress_bars = False  # the trainer logs its own progress (trainer/metrics.py)
    return ds


def worker_batches(plan: EpochPlan, spec: SampleSpec, data: DataSection, *, streams: int, rank: int, world: int,
                   samples_seen: int, samples_end: int, prefetch: int) -> Iterator[dict[str, torch.Tensor]]:
    """This worker's batches from the data position `samples_seen` (clips consumed by all workers) up to
    `samples_end`: its streams (`streams / world` of them), each read from its own position (`samples_seen / streams`
    clips into it), their shares of each step's global batch concatenated in stream order."""
    per_worker = streams // world
    share = data.batch_size // per_worker  # clips per stream per step
    start, end = samples_seen // streams, samples_end // streams
    # Each stream's executor runs in its own coordinator actor (`streaming_split(1)`), not in this worker: in-process,
    # Ray Data's scheduling and prefetch threads compete with the training step for the GIL (a 1-CPU Ray task training
    # nano beside its own dataset: 0.176 s a step in-process, 0.049 s with the split; model alone 0.036 s). One split
    # keeps the blocks' order.
    iterators = [
        build_dataset(plan, spec, start, end, batch_size=share, stream=s, streams=streams,
                      cpus_per_task=data.cpus_per_task, max_tasks=data.max_tasks, buffer_mb=data.buffer_mb,
                      block_mb=data.block_mb)
        .streaming_split(1, equal=False)[0]
        .iter_torch_batches(batch_size=share * data.num_sample, drop_last=True, prefetch_batches=prefetch)
        for s in range(rank * per_worker, (rank + 1) * per_worker)]
    if len(iterators) == 1:
        yield from iterators[0]
        return
    for parts in zip(*iterators, strict=False):
        yield {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
