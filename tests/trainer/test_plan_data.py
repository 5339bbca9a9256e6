"""The sample order and the per-sample transforms, without Ray: determinism, exact epochs, positions, masks."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from trainer.data import SampleSpec, decode_batch, read_units, select_frames, to_device
from trainer.plan import EpochPlan, ShardIndex
from videomae.augment import train_frames
from videomae.masks import MaskingConfig
from videomae.shards import read_clips
from videomae.video import jpegbox
from videomae.video.frames import decode_jpegs


def _rows(plan: EpochPlan, units: range) -> list[tuple[str, int]]:
    out = []
    for u in units:
        out += [(chunk.file, int(r)) for chunk, r in plan.unit(u).rows()]
    return out


def test_epoch_is_one_seeded_pass(sample_shards):
    index = ShardIndex.build([str(sample_shards)], "train")
    n_train = read_clips(str(sample_shards), columns=["split"], split="train").num_rows
    plan = EpochPlan(index, seed=3)
    epoch0 = _rows(plan, range(plan.units_per_epoch))
    assert len(epoch0) == len(set(epoch0)) == n_train == plan.epoch_length(0)  # every train clip exactly once
    again = _rows(EpochPlan(index, seed=3), range(plan.units_per_epoch))
    other = _rows(EpochPlan(index, seed=4), range(plan.units_per_epoch))
    epoch1 = _rows(plan, range(plan.units_per_epoch, 2 * plan.units_per_epoch))
    assert epoch0 == again and epoch0 != other and epoch0 != epoch1 and sorted(epoch0) == sorted(epoch1)


def test_locate_and_unit_base_agree(sample_shards):
    plan = EpochPlan(ShardIndex.build([str(sample_shards)], "train"), seed=0)
    for seq in (0, 1, 17, plan.epoch_length(0) - 1, plan.epoch_length(0), 3 * plan.epoch_length(0) + 5):
        unit, offset, base = plan.locate(seq)
        assert plan.unit_base(unit) == base and base + offset == seq
        assert 0 <= offset < len(plan.unit(unit)) == plan.unit_length(unit)


def test_mix_weights_set_shares(sample_shards):
    path = str(sample_shards)
    index = ShardIndex.build([path, path], "train")  # the same data twice, weighted 3:1
    plan = EpochPlan(index, seed=0, weights=[3.0, 1.0])
    counts = collections.Counter(c.dataset for u in range(20 * plan.units_per_epoch) for c in plan.unit(u).chunks)
    assert counts[0] / counts[1] == plan.per_epoch[0] / plan.per_epoch[1]
    assert 2.0 <= plan.per_epoch[0] / plan.per_epoch[1] <= 4.0


def test_resume_read_skips_consumed_rows(sample_shards):
    plan = EpochPlan(ShardIndex.build([str(sample_shards)], "train"), seed=0)
    pieces = tuple(plan.stream_pieces(0, 1, 5, plan.unit_length(0) + 10))  # from position 5, into the second unit
    assert [p.unit for p in pieces] == [0, 1] and pieces[0].start == 5
    table = read_units({"id": np.arange(2)}, plan, pieces)
    seqs = table.column("seq").to_pylist()
    assert seqs == list(range(5, 5 + plan.unit_length(0) + 10))


def test_decode_batch_repeats_with_own_masks(sample_shards):
    plan = EpochPlan(ShardIndex.build([str(sample_shards)], "train"), seed=0)
    table = read_units({"id": np.arange(1)}, plan, tuple(plan.stream_pieces(0, 1, 0, 3)))
    masks = MaskingConfig(encoder="tube", encoder_ratio=0.75, decoder="running_cell", decoder_ratio=0.5)
    spec = SampleSpec(img_size=64, num_frames=8, frame_step=1, num_sample=2, scales=(1.0, 0.875, 0.75, 0.66),
                      seed=0, grid=(4, 4, 4), masks=masks)
    out = decode_batch(table, spec)
    assert out["clip"].shape == (6, 8, 64, 64, 3) and out["clip"].dtype == np.uint8  # pixels: the worker normalises
    assert out["enc_mask"].shape == out["dec_mask"].shape == (6, 64)
    assert (out["enc_mask"].sum(1) == 48).all()  # tube 0.75 of a 4x4 grid, every slice
    assert (out["dec_mask"].sum(1) == 32).all()  # running cell: half of each 2x2 cell
    assert list(out["seq"]) == [0, 0, 1, 1, 2, 2] and list(out["repeat"]) == [0, 1] * 3
    # Repeats of one clip differ (own crop and masks); the same seed reproduces them exactly.
    assert not np.array_equal(out["enc_mask"][0], out["enc_mask"][1]) or not np.allclose(out["clip"][0],
                                                                                            out["clip"][1])
    again = decode_batch(table, spec)
    assert np.array_equal(again["clip"], out["clip"]) and np.array_equal(again["dec_mask"], out["dec_mask"])
    model_input = to_device({k: torch.from_numpy(v) for k, v in out.items()}, torch.device("cpu"))
    assert model_input["clip"].shape == (6, 3, 8, 64, 64) and model_input["clip"].dtype == torch.float32
    assert abs(float(model_input["clip"].mean())) < 3.0  # normalised, not raw 0..255
    assert torch.equal(model_input["enc_mask"], torch.from_numpy(out["enc_mask"]))


@pytest.mark.skipif(not jpegbox.available(), reason="box decoding not built in this install (no C compiler or "
                    "libjpeg headers at pip install); the whole-frame path runs and the other tests here check it")
def test_box_decoding_keeps_the_samples(sample_shards, monkeypatch):
    """decode_batch decodes only the views' bounding box (jpegbox); the samples are those of whole frames through
    `train_frames` (the definition), and of the whole-frame path it falls back to, crops, flips and masks alike."""
    plan = EpochPlan(ShardIndex.build([str(sample_shards)], "train"), seed=0)
    table = read_units({"id": np.arange(1)}, plan, tuple(plan.stream_pieces(0, 1, 0, 6)))
    masks = MaskingConfig(encoder="tube", encoder_ratio=0.75, decoder="running_cell", decoder_ratio=0.5)
    for num_sample, step in ((1, 1), (4, 2)):
        spec = SampleSpec(img_size=32, num_frames=8, frame_step=step, num_sample=num_sample, seed=3, grid=(4, 2, 2),
                          scales=(1.0, 0.875, 0.75, 0.66), masks=masks, flip=True)
        boxed = decode_batch(table, spec)
        expected = []
        for frames, seq in zip(table.column("frames").to_pylist(), table.column("seq").to_pylist(), strict=True):
            whole = decode_jpegs(select_frames(frames, spec.num_frames, spec.frame_step))
            for r in range(num_sample):
                rng = np.random.default_rng([spec.seed, seq, r])
                expected.append(train_frames(whole, spec.img_size, rng, spec.scales, flip=True))
        assert np.array_equal(boxed["clip"], np.stack(expected))
        with monkeypatch.context() as m:
            m.setattr(jpegbox, "_load", lambda: None)
            assert not jpegbox.available()
            whole_path = decode_batch(table, spec)
        for key in boxed:
            assert np.array_equal(boxed[key], whole_path[key]), key
        # A frame box decoding refuses (truncated: libjpeg would grey the rest and warn) sends the clip down the
        # whole-frame path: the same outcome as before box decoding (here Pillow's error for a truncated file).
        if num_sample == 4:
            rows = table.to_pylist()
            first = rows[1]["frames"][0]
            rows[1]["frames"] = [first[: len(first) // 2]] + rows[1]["frames"][1:]
            damaged = pa.Table.from_pylist(rows, schema=table.schema)
            outcomes = []
            for box in (True, False):
                with monkeypatch.context() as m:
                    if not box:
                        m.setattr(jpegbox, "_load", lambda: None)
                    with pytest.raises(OSError) as err:
                        decode_batch(damaged, spec)
                    outcomes.append(str(err.value))
            assert outcomes[0] == outcomes[1] and "truncated" in outcomes[0]


def test_select_frames_steps_and_pads():
    frames = [bytes([i]) for i in range(6)]
    assert select_frames(frames, 3, 2) == [b"\x00", b"\x02", b"\x04"]
    assert select_frames(frames, 5, 2) == [b"\x00", b"\x02", b"\x04", b"\x04", b"\x04"]  # short: repeat the last


def test_labeled_index_drops_unlabeled(sample_shards):
    index = ShardIndex.build([str(sample_shards)], "train", labeled=True)
    t = read_clips(str(sample_shards), columns=["split", "label"], split="train")
    assert index.num_clips() == pa.compute.sum(pa.compute.is_valid(t["label"])).as_py() < t.num_rows


def _same_video_pairs(plan: EpochPlan, batch: int) -> float:
    """Mean number of clips per batch whose video already has a clip earlier in the same batch, over one epoch."""
    rows = [(c, r) for u in range(plan.units_per_epoch) for c, r in plan.unit(u).rows()]
    videos = [(c.file, c.row_group, c.videos[c.rows.index(r)]) for c, r in rows]
    batches = [videos[i:i + batch] for i in range(0, len(videos) - batch + 1, batch)]
    return float(np.mean([len(b) - len(set(b)) for b in batches]))


def test_clips_of_one_video_are_spread_over_batches(sample_shards):
    # Every chunk holds both clips of each of its videos. Read one chunk at a time in a plain shuffle, a batch of 16
    # carries ~3 same-video pairs (that kept the motion classifier near chance); the plan's units mix several chunks
    # and read every video's first clip before any second clip.
    index = ShardIndex.build([str(sample_shards)], "train", labeled=True)
    assert all(len(set(c.videos)) < len(c.rows) for c in index.chunks[0])  # chunks do hold same-video clips
    assert _same_video_pairs(EpochPlan(index, seed=0), 16) < 0.1


def _seqs(plan: EpochPlan, pieces) -> list[int]:
    return [seq for p in pieces for seq in range(plan.unit_base(p.unit) + p.start, plan.unit_base(p.unit) + p.stop)]


def test_streams_split_every_epoch_and_resume_exactly(sample_shards):
    # S streams cut each epoch's order into S contiguous parts; together they read every sample of an epoch once, and
    # a stream restarted at any position continues its own sequence.
    plan = EpochPlan(ShardIndex.build([str(sample_shards)], "train"), seed=0, chunks_per_unit=2)
    two_epochs = plan.epoch_length(0) + plan.epoch_length(1)
    for streams in (1, 2, 3):
        read = []
        for s in range(streams):
            n = sum(hi - lo for lo, hi in (plan.part(e, s, streams) for e in (0, 1)))
            mine = _seqs(plan, plan.stream_pieces(s, streams, 0, n))
            assert len(mine) == n and mine == sorted(mine)
            k = n // 3
            assert _seqs(plan, plan.stream_pieces(s, streams, k, n - k)) == mine[k:]
            read += mine
        assert sorted(read) == list(range(two_epochs))


_FAULTS = """
import resource, sys
import numpy as np
from trainer.data import keep_heap

def faults():  # minor page faults of writing a fresh 64 MiB block, 4 times over (a decode task's output blocks)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        block = np.empty(64 * 2**20, dtype=np.uint8)
        block[:] = 1
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
default = faults()
kept = keep_heap()
faults()  # the first block after keep_heap comes from the heap once
print(default, kept, faults())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="keep_heap tunes glibc's allocator (mallopt), which only Linux "
                    "has; elsewhere it is a documented no-op and there is no heap policy to check")
def test_keep_heap_reuses_freed_blocks():
    """A decode task's process keeps freed blocks in its heap: by default each 64 MiB block is a fresh mapping whose
    pages fault in (zero-filled by the kernel) as they are written; after `keep_heap` the next blocks reuse them."""
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    default, kept, after = int(out[0]), out[1] == "True", int(out[2])
    assert kept
    assert default >= 4 * 32  # at least one fault per 2 MiB huge page of every block
    assert after <= default // 20
