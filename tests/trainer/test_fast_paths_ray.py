"""Every fast path a cluster takes, executed on CPU on real Ray Train (gloo): 2-worker DDP, FSDP (FSDP2 fully_shard),
bf16 autocast, torch.compile, gradient checkpointing, gradient accumulation, a killed worker, and 2-worker validation.

One module-scoped set of short nano runs on the val split of the session shards (88 clips: an epoch is 11 steps of a
global batch of 8), all with the same seed, data order (2 read streams) and a constant lr, so that they can be
compared step by step. The tolerances and why each is what it is are in docs/training.md ("Fast paths").
The FSDP, bf16 and compiled runs accumulate 2 micro-batches of 2 clips per worker (`optim.accum_steps`): the same
clips per optimizer step as DDP's batch of 4, so they compare with it as before and run the skipped all-reduce of
their own wrapper (FSDP2's, compiled DDP's) under their precision.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from trainer_testlib import REPO, TINY, recipe

import videomae
from trainer import evaluation, loop, postpretrain, pretrain
from trainer.checkpointing import POSITION_FILE, STATE_FILE
from trainer.classes import label_space
from trainer.metrics import read_data_log, read_metrics
from trainer.step import NonFiniteLossError
from videomae.model import VideoMAEClassifier, VideoMAEPretrain
from videomae.modeldir import MODEL_SUBDIR, WEIGHTS_FILE

pytestmark = pytest.mark.slow

# Measured on this 2-core machine (docs/training.md "Fast paths"); each bound leaves room above the measured value.
LOSS_DDP = 1e-5  # 2 workers x 4 vs 1 worker x 8: the same clips, gradients averaged by DDP (see the test)
WEIGHTS_DDP = 1e-5
LOSS_SAME_MATH = 1e-5  # the same computation reorganised: FSDP vs DDP, recomputed activations, a restarted step
LOSS_COMPILE = 1e-4  # inductor fuses and reorders float ops
LOSS_BF16 = 5e-3  # bf16 autocast (8-bit mantissa) against fp32

BASE = ("data.split=val", "data.cpus_per_task=0.25", "optim.lr=3e-3", "optim.min_lr=3e-3", "optim.warmup_steps=0",
        "run.log_every=1", "run.checkpoint_every=4", "run.max_failures=2", "debug.log_data=true")
TWO = ("scaling.num_workers=2", "scaling.cpus_per_worker=0.5")  # data.batch_size 4 each: a global batch of 8
ACCUM2 = ("data.batch_size=2", "optim.accum_steps=2")  # the same 4 clips per worker and optimizer step, in 2 halves
RUNS = {
    "ddp": (*TWO, "optim.max_steps=12", "debug.fail_at_step=6"),
    "single": ("scaling.num_workers=1", "scaling.cpus_per_worker=1", "data.batch_size=8", "data.streams=2",
               "optim.max_steps=12"),
    "fsdp": (*TWO, *ACCUM2, "scaling.strategy=fsdp", "model.grad_checkpointing=true", "optim.max_steps=8",
             "debug.fail_at_step=6", "monitor.enabled=true", "monitor.every=4"),  # the checks gather weights too
    "bf16": (*TWO, *ACCUM2, "scaling.precision=bf16", "optim.max_steps=4"),
    "compiled": (*TWO, *ACCUM2, "model.compile=true", "optim.max_steps=6", "debug.fail_at_step=5"),
    # Gradient accumulation against "single" (1 worker x 8 clips, 2 streams): 1 worker x 4 micro-batches of 2, and
    # 2 workers x 2 micro-batches of 2 (killed at step 6: the resume lands on an optimizer step).
    "accum4": ("scaling.num_workers=1", "scaling.cpus_per_worker=1", "data.batch_size=2", "data.streams=2",
               "optim.accum_steps=4", "optim.max_steps=12"),
    "accum2x2": (*TWO, *ACCUM2, "optim.max_steps=12", "debug.fail_at_step=6"),
}


@dataclass
class Run:
    cfg: Any
    result: Any

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.run.run_dir)

    def steps(self) -> dict[int, dict]:
        """The logged row of each step, from the attempt the final weights descend from (a restarted attempt logs
        after the killed one and replaces its rows)."""
        return {r["step"]: r for r in read_metrics(str(self.run_dir))}

    def data(self) -> dict[int, list[list[int]]]:
        """Per step: the seqs of the clips each rank trained on (final lineage)."""
        return {r["step"]: r["seqs"] for r in read_data_log(str(self.run_dir))}

    def checkpoints(self) -> dict[int, Path]:
        """The run's kept checkpoints by step."""
        found = [p for p in self.run_dir.glob("checkpoint_*") if p.is_dir()]
        return {json.loads((p / POSITION_FILE).read_text())["step"]: p for p in found}


class Runs:
    """Each run of RUNS, started on first use and shared by every test of the module."""

    def __init__(self, shards: Path, storage: Path):
        self.shards, self.storage, self.cache = shards, storage, {}

    def __getitem__(self, name: str) -> Run:
        if name not in self.cache:
            cfg = recipe("pretrain", TINY, self.shards, self.storage, name, *BASE, *RUNS[name])
            self.cache[name] = Run(cfg, pretrain.main(cfg=cfg))
        return self.cache[name]


@pytest.fixture(scope="module")
def runs(ray_session, sample_shards, tmp_path_factory) -> Runs:
    return Runs(sample_shards, tmp_path_factory.mktemp("fast_paths"))


def rel_diff(a: list[float], b: list[float]) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def losses(run: Run, steps) -> list[float]:
    rows = run.steps()
    return [rows[s]["loss"] for s in steps]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / MODEL_SUBDIR / WEIGHTS_FILE))


def weights_rel_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).norm() / b[k].norm().clamp_min(1e-12)) for k in a)


def report(name: str, value: float, bound: float) -> None:
    print(f"{name}: {value:.3g} (bound {bound:g})")  # visible with -s: the measured margins
    assert value <= bound, f"{name}: {value:.3g} > {bound:g}"


# ------------------------------------------------------------------------------------------------------------ DDP
def test_two_workers_equal_one_worker_with_twice_the_batch(runs):
    """2 workers x batch 4 (DDP) against 1 worker x batch 8 reading the same 2 streams: the same clips, crops and masks
    in every step, so the same losses, gradient norms and final weights. DDP averages the workers' mean losses where
    one worker takes the mean over all clips; the two agree because every clip counts the same number of tokens: tube
    masking hides the same positions in every slice, and running-cell masking decodes each cell position in 2 of every
    4 slices, so over the nano grid's 4 slices every clip decodes 32 tokens of which exactly 4 are visible. (Where the
    counts differ between clips, DDP weighs the clips slightly differently, as the reference's does.)"""
    ddp, single = runs["ddp"], runs["single"]
    steps = range(1, 13)
    ddp_data, single_data = ddp.data(), single.data()
    for s in steps:  # the same clips in every step, half on each worker
        assert sorted(ddp_data[s][0] + ddp_data[s][1]) == sorted(single_data[s][0]), s
    report("loss, 2 workers vs 1", rel_diff(losses(ddp, steps), losses(single, steps)), LOSS_DDP)
    grad = [ddp.steps()[s]["grad_norm"] for s in steps], [single.steps()[s]["grad_norm"] for s in steps]
    report("grad norm, 2 workers vs 1", rel_diff(*grad), 10 * LOSS_DDP)  # a sum instead of a mean would be 2x
    report("weights, 2 workers vs 1", weights_rel_diff(weights(ddp.run_dir), weights(single.run_dir)), WEIGHTS_DDP)


def test_workers_read_disjoint_shares_and_an_epoch_covers_every_clip_once(runs):
    ddp = runs["ddp"]
    data = ddp.data()
    for s, (rank0, rank1) in data.items():
        assert len(rank0) == len(rank1) == 4 and not set(rank0) & set(rank1), s
    epoch = [seq for s in range(1, 12) for rank in data[s] for seq in rank]  # 11 steps x 8 clips = the 88 val clips
    assert sorted(epoch) == list(range(88))
    # ... and those 88 positions are the 88 val clips, each once.
    plan, length = loop.prepare(ddp.cfg)
    assert length.epoch_length == length.steps_per_epoch * 8 == 88
    rows = set()
    for seq in epoch:
        unit, offset, _ = plan.locate(seq)
        chunk, row = plan.unit(unit).rows()[offset]
        rows.add((chunk.file, chunk.row_group, row))
    assert len(rows) == 88 == plan.index.num_clips()


def test_killed_worker_restarts_both_from_the_checkpoint_and_repeats_nothing(runs):
    """Rank 0 kills its process at step 6; both workers restart from the step-4 checkpoint, each stream at its
    checkpoint position: steps 5 and 6 train on the same clips again (their first attempt was rolled back with the
    weights), with the same losses, and the final lineage holds every step's clips once."""
    ddp = runs["ddp"]
    assert (ddp.run_dir / loop.FAIL_MARKER).exists()
    rows = read_metrics(str(ddp.run_dir))
    first = [r for r in rows if r["attempt_start_step"] == 0]
    again = [r for r in rows if r["attempt_start_step"] > 0]
    assert [r["step"] for r in first] == [1, 2, 3, 4, 5]  # died at 6, before reporting it
    assert {r["attempt_start_step"] for r in again} == {4} and [r["step"] for r in again] == list(range(5, 13))
    assert again[0]["attempt_first_seq"] == 16  # rank 0's stream 0 at 4 steps x 4 clips
    logged = read_data_log(str(ddp.run_dir))
    by_attempt = {(r["attempt_start_step"], r["step"]): r["seqs"] for r in logged}
    assert by_attempt[(0, 5)] == by_attempt[(4, 5)]  # the same clips on the same ranks after the restart
    report("loss of step 5, restarted vs first attempt", rel_diff([again[0]["loss"]], [first[4]["loss"]]),
           LOSS_SAME_MATH)
    lineage = [seq for s, ranks in sorted(ddp.data().items()) for rank in ranks for seq in rank]
    assert len(lineage) == len(set(lineage)) == 12 * 8
    assert ddp.result.metrics["step"] == 12 and ddp.result.metrics["samples_seen"] == 96


# ------------------------------------------------------------------------------------------ gradient accumulation
def test_accumulated_micro_batches_equal_one_larger_batch(runs):
    """1 worker x accum 4 x 2 clips and 2 workers x accum 2 x 2 clips against 1 worker x 8 clips: every optimizer step
    trains on the same 8 clips (the micro-batches of a step are consecutive positions of each stream), so the losses
    (the mean of the micro-batches' mean losses: every clip counts the same tokens, see the DDP test), gradient norms
    and final weights agree; the effective batch (8) sets the steps, the lr scaling and the data position."""
    single = runs["single"]
    steps = range(1, 13)
    for name in ("accum4", "accum2x2"):
        run = runs[name]
        assert run.cfg.global_batch == single.cfg.global_batch == 8 and run.cfg.lr_scale == single.cfg.lr_scale
        data, single_data = run.data(), single.data()
        for s in steps:
            assert sorted(seq for rank in data[s] for seq in rank) == sorted(single_data[s][0]), (name, s)
        report(f"loss, {name} vs 1 worker x 8", rel_diff(losses(run, steps), losses(single, steps)), LOSS_DDP)
        grad = [run.steps()[s]["grad_norm"] for s in steps], [single.steps()[s]["grad_norm"] for s in steps]
        report(f"grad norm, {name} vs 1 worker x 8", rel_diff(*grad), 10 * LOSS_DDP)
        report(f"weights, {name} vs 1 worker x 8", weights_rel_diff(weights(run.run_dir), weights(single.run_dir)),
               WEIGHTS_DDP)
        assert run.result.metrics["step"] == 12 and run.result.metrics["samples_seen"] == 96


def test_accumulation_resumes_at_an_optimizer_step(runs):
    """2 workers x accum 2, rank 0 killed at step 6: both restart from the step-4 checkpoint (written after a whole
    optimizer step), each stream at its 4 x 4 clips, and replay step 5's micro-batches."""
    run = runs["accum2x2"]
    assert (run.run_dir / loop.FAIL_MARKER).exists()
    for step, ckpt in run.checkpoints().items():  # every checkpoint at a whole step of the effective batch
        assert json.loads((ckpt / POSITION_FILE).read_text())["samples_seen"] == 8 * step
    rows = read_metrics(str(run.run_dir))
    again = [r for r in rows if r["attempt_start_step"] > 0]
    assert {r["attempt_start_step"] for r in again} == {4} and again[0]["attempt_first_seq"] == 16
    first = {r["step"]: r for r in rows if r["attempt_start_step"] == 0}
    report("loss of step 5, accumulated, restarted vs first attempt", rel_diff([again[0]["loss"]], [first[5]["loss"]]),
           LOSS_SAME_MATH)
    lineage = [seq for _, ranks in sorted(run.data().items()) for rank in ranks for seq in rank]
    assert len(lineage) == len(set(lineage)) == 12 * 8


# ----------------------------------------------------------------------------------------------------------- FSDP
def test_fsdp_with_grad_checkpointing_matches_ddp_and_resumes(runs):
    """FSDP2 with activation checkpointing (the large presets' setting) against plain DDP: the same losses; killed at
    step 6, it resumes from its own (gathered) step-4 checkpoint; its final weights equal DDP's step-8 checkpoint."""
    fsdp, ddp = runs["fsdp"], runs["ddp"]
    assert (fsdp.run_dir / loop.FAIL_MARKER).exists()
    # The learning-health checks ran on the sharded model (every rank joins their forwards; rank 0 draws).
    assert {r["step"] for r in read_metrics(str(fsdp.run_dir)) if "heldout_loss" in r} >= {4, 8}
    assert (fsdp.run_dir / "monitor" / "step_0000008.png").exists()
    assert {r["attempt_start_step"] for r in read_metrics(str(fsdp.run_dir)) if r["step"] > 5} == {4}
    report("loss, FSDP + grad checkpointing vs DDP", rel_diff(losses(fsdp, range(1, 9)), losses(ddp, range(1, 9))),
           LOSS_SAME_MATH)
    grad = [fsdp.steps()[s]["grad_norm"] for s in range(1, 9)], [ddp.steps()[s]["grad_norm"] for s in range(1, 9)]
    report("grad norm, FSDP (sharded, all-reduced) vs DDP", rel_diff(*grad), 10 * LOSS_SAME_MATH)
    report("weights at step 8, FSDP vs DDP", weights_rel_diff(weights(fsdp.run_dir), weights(ddp.checkpoints()[8])),
           LOSS_SAME_MATH)
    model = videomae.load_model(fsdp.run_dir / MODEL_SUBDIR)
    assert isinstance(model, VideoMAEPretrain) and model.cfg.preset == "nano"
    state = torch.load(fsdp.checkpoints()[8] / STATE_FILE, weights_only=False)
    assert len(state["rng"]) == 2  # each worker's RNG states
    assert set(state["optimizer"]["state"]) == set(model.state_dict())  # whole, by parameter name


def test_fsdp_export_serves_embeddings(runs, tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "api"))
    from api_helpers import API_KEY, ffmpeg, start_server, stop_server, upload

    model_dir = runs["fsdp"].run_dir / MODEL_SUBDIR
    video = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=96x72:rate=25", "-t", "1", "-pix_fmt", "yuv420p", str(video))
    server = start_server(tmp_path, {"VIDEOMAE_MODEL": str(model_dir), "VIDEOMAE_API_KEYS": API_KEY})
    try:
        with server.client() as client:
            models = client.get("/v1/models")
            response = client.post("/v1/embed", files=upload(video))
    finally:
        stop_server(server)
    assert models.status_code == 200 and response.status_code == 200, response.text
    body = response.json()
    assert body["dim"] == 96 and len(body["embedding"]) == 96 and np.isfinite(body["embedding"]).all()


# ----------------------------------------------------------------------------------------------------------- bf16
def test_bf16_autocast_stays_close_to_fp32_with_fp32_state(runs):
    bf16, ddp = runs["bf16"], runs["ddp"]
    report("loss, bf16 autocast vs fp32", rel_diff(losses(bf16, range(1, 5)), losses(ddp, range(1, 5))), LOSS_BF16)
    ckpt = bf16.checkpoints()[4]
    assert {t.dtype for t in weights(ckpt).values()} == {torch.float32}  # master weights
    state = torch.load(ckpt / STATE_FILE, weights_only=False)["optimizer"]["state"]
    moments = [v for s in state.values() for k, v in s.items() if k in ("exp_avg", "exp_avg_sq")]
    assert len(moments) == 2 * len(state) and {m.dtype for m in moments} == {torch.float32}


def test_non_finite_loss_stops_the_run_naming_the_step(runs):
    """The bf16 run resumed with an absurd learning rate: the first update blows the weights up, the next loss is
    not finite, and every worker stops before touching the weights, with a message that says what to do."""
    bf16 = runs["bf16"]
    cfg = recipe("pretrain", TINY, runs.shards, runs.storage, "bf16", *BASE, *RUNS["bf16"], "optim.max_steps=8",
                 "optim.lr=1e30", "optim.min_lr=1e30")
    with pytest.raises(NonFiniteLossError) as e:
        pretrain.main(cfg=cfg)
    message = str(e.value)
    assert "at step 6" in message and "optim.lr" in message and "last checkpoint (step 4)" in message, message
    rows = read_metrics(str(bf16.run_dir))
    assert rows[-1]["step"] == 6 and "stopped" in rows[-1] and rows[-2]["step"] == 5
    assert json.loads((bf16.run_dir / loop.STOP_FILE).read_text())["step"] == 6
    assert max(bf16.checkpoints()) == 4  # nothing broken was saved
    print(message)


# -------------------------------------------------------------------------------------------------------- compile
def test_compiled_run_matches_eager_reports_compile_time_and_resumes(runs):
    compiled, ddp = runs["compiled"], runs["ddp"]
    report("loss, compiled vs eager", rel_diff(losses(compiled, range(1, 7)), losses(ddp, range(1, 7))),
           LOSS_COMPILE)
    rows = compiled.steps()
    # Dynamo's compile time, and the first step's wall time, which it dominates (an eager first step takes <1 s).
    assert rows[1]["compile_s"] > 0 and rows[1]["first_step_s"] > ddp.steps()[1]["first_step_s"]
    assert "compile_s" not in ddp.steps()[1]
    # Killed at step 5 and restarted compiled from the step-4 checkpoint: no `_orig_mod.` (nor `module.`) anywhere.
    assert rows[6]["attempt_start_step"] == 4
    for ckpt in compiled.checkpoints().values():
        state = torch.load(ckpt / STATE_FILE, weights_only=False)["optimizer"]
        names = [*weights(ckpt), *state["state"], *(p for g in state["param_groups"] for p in g["params"])]
        assert not [n for n in names if n.startswith(("_orig_mod.", "module."))]
    assert isinstance(videomae.load_model(compiled.run_dir / MODEL_SUBDIR), VideoMAEPretrain)


# ------------------------------------------------------------------------------------------ post-pre-training
def test_two_worker_validation_equals_one_process(runs, tmp_path):
    """Post-pre-training on 2 DDP workers: val top-1/top-5 summed over the workers' shares of the val videos equals
    one in-process evaluation of the exported weights over all of them, with every video counted once."""
    cfg = recipe("postpretrain", "configs/postpretrain/tiny.yaml", runs.shards, tmp_path, "post2", *TWO,
                 f"model.init_from={runs['ddp'].run_dir / MODEL_SUBDIR}", "optim.max_steps=2", "optim.warmup_steps=0",
                 "data.batch_size=4", "data.cpus_per_task=0.25", "eval.num_crops=1", "run.log_every=1")
    result = postpretrain.main(cfg=cfg)
    model = videomae.load_model(f"{cfg.run.run_dir}/{MODEL_SUBDIR}")
    assert isinstance(model, VideoMAEClassifier)
    videos = evaluation.read_videos(cfg.data.paths, "val", None, cfg.eval.num_clips)
    views = evaluation.ViewSpec(model.cfg.img_size, model.cfg.num_frames, num_crops=1)
    hits = evaluation.classify_videos(model, videos, views, device=torch.device("cpu"), batch_size=16,
                                      label_map=torch.tensor(label_space(cfg)["label_map"]))
    m = result.metrics
    assert m["val_videos"] == len(videos) == len({v.video_id for v in videos}) > 20
    assert m["val_top1"] == hits["top1_hits"] / len(videos) and m["val_top5"] == hits["top5_hits"] / len(videos)
