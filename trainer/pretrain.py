"""Dual-masked pre-training (VideoMAE V2) on Ray Train.

    python trainer/pretrain.py --config configs/pretrain/tiny.yaml [--set optim.max_steps=100 ...]
    ray job submit --working-dir . -- python trainer/pretrain.py --config configs/pretrain/vit_b.yaml

The recipe, top to bottom: validate the config and index the shards on the driver (a bad key or an empty dataset
stops here, before any worker starts) -> build the data stream (trainer/data.py) -> TorchTrainer runs `train_loop` on
every worker: model + restore -> DDP/FSDP -> AdamW -> per step: lr from the schedule, one masked-reconstruction step,
metrics, a checkpoint every `run.checkpoint_every` steps and at the end -> the driver exports the final model to
`<run_dir>/model`, a directory the API loads.

Rerunning with the same `run.name` and `run.storage_path` resumes from the latest checkpoint; a worker that dies is
restarted from its last checkpoint (`run.max_failures`), with the data position continuing (trainer/checkpointing.py).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a plain file (`python trainer/pretrain.py`, `ray job submit`)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainer import checkpointing, launch
from trainer.config import PretrainConfig
from trainer.data import ResumableDataset, SampleSpec
from trainer.metrics import MetricsSink, StepTimer
from trainer.optim import Schedule, build_optimizer, set_lr
from trainer.plan import EpochPlan, ShardIndex
from trainer.step import Precision, train_step
from videomae.model import VideoMAEPretrain

FAIL_MARKER = ".debug_failed_once"


# ------------------------------------------------------------------------------------------------ driver
def plan_run(cfg: PretrainConfig) -> tuple[EpochPlan, dict]:
    """Index the shards and derive the run's length: steps per epoch, total steps, the last data position."""
    index = ShardIndex.build(cfg.data.paths, cfg.data.split)
    plan = EpochPlan(index, cfg.run.seed, cfg.data.weights, cfg.data.chunks_per_unit)
    steps_per_epoch = max(1, plan.mean_epoch_length // cfg.global_batch)
    total = cfg.optim.max_steps or math.ceil(cfg.optim.epochs * steps_per_epoch)
    return plan, {"steps_per_epoch": steps_per_epoch, "total_steps": total, "epoch_length": plan.mean_epoch_length}


def sample_spec(cfg: PretrainConfig) -> SampleSpec:
    arch = cfg.model.architecture()
    return SampleSpec(img_size=arch.img_size, num_frames=arch.num_frames, frame_step=cfg.data.frame_step,
                      num_sample=cfg.data.num_sample, scales=tuple(cfg.data.scales), seed=cfg.run.seed,
                      grid=arch.grid, masks=cfg.mask)


def main(argv: list[str] | None = None, cfg: PretrainConfig | None = None):
    launch.setup_logging()
    cfg = cfg or launch.validate_or_exit(lambda: launch.parse_args("pretrain", argv, __doc__.splitlines()[0]))
    plan, lengths = launch.validate_or_exit(lambda: plan_run(cfg))
    launch.log.info("pre-training %s: %d clips/epoch, %d steps (%d per epoch), global batch %d x %d repeats, lr %.3g",
                    cfg.model.preset, lengths["epoch_length"], lengths["total_steps"], lengths["steps_per_epoch"],
                    cfg.global_batch, cfg.data.num_sample, cfg.optim.lr * cfg.lr_scale)
    launch.connect_ray()
    checkpointing.save_resolved_config(cfg.run.run_dir, cfg.model_dump(mode="json"))
    end_seq = lengths["total_steps"] * cfg.global_batch
    dataset = ResumableDataset(plan, sample_spec(cfg), cfg.run.run_dir, end_seq, cfg.data.batch_size,
                               cfg.data.cpus_per_task, cfg.data.max_tasks, cfg.data.buffer_mb)
    loop_config = {"config": cfg.model_dump(mode="json"), **lengths}
    result = launch.torch_trainer(train_loop, loop_config, cfg, datasets={"train": dataset}).fit()
    if result.error:
        raise result.error
    exported = checkpointing.export_model(result.checkpoint.path, f"{cfg.run.run_dir}/model")
    launch.log.info("done: final metrics %s; model exported to %s", result.metrics, exported)
    return result


# ------------------------------------------------------------------------------------------------ workers
def train_loop(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    cfg = PretrainConfig.model_validate(loop_config["config"])
    total, steps_per_epoch = loop_config["total_steps"], loop_config["steps_per_epoch"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    fsdp = cfg.scaling.strategy == "fsdp"
    launch.setup_logging()

    # Model: the same init on every rank (seeded), then the checkpoint's weights if this run resumes.
    torch.manual_seed(cfg.run.seed)
    arch = cfg.model.architecture()
    model = VideoMAEPretrain(arch)
    checkpoint = ray.train.get_checkpoint()
    position = {"step": 0, "samples_seen": 0}
    ckpt_dir = None
    if checkpoint is not None:
        ckpt_dir = checkpoint.to_directory()
        position = checkpointing.restore_model(ckpt_dir, model)
    model = launch.wrap_model(model, cfg.scaling.strategy)
    if cfg.model.compile:
        model = torch.compile(model)
    optimizer = build_optimizer(checkpointing.unwrap(model), cfg.optim)
    precision = Precision.resolve(cfg.scaling.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=False)  # bf16/fp32: no loss scaling
    if ckpt_dir is not None:
        checkpointing.restore_optimizer(ckpt_dir, model, optimizer, scaler, fsdp)
    schedule = Schedule.from_config(cfg.optim, cfg.lr_scale, total, steps_per_epoch)

    step, start_step = position["step"], position["step"]
    if step >= total:  # restarted after its last checkpoint: nothing left to train (no report, on every rank)
        launch.log.info("run already complete at step %d of %d", step, total)
        return
    sink = MetricsSink(cfg.run.run_dir, total, cfg.run.tensorboard) if rank == 0 else None
    timer, losses, norms = StepTimer(), [], []
    first_seq = None
    rows = cfg.data.batch_size * cfg.data.num_sample
    batches = ray.train.get_dataset_shard("train").iter_torch_batches(
        batch_size=rows, drop_last=True, prefetch_batches=cfg.data.prefetch_batches)
    model.train()
    for batch in batches:
        if step >= total:
            break
        if first_seq is None:
            first_seq = int(batch["seq"].min())
            if world == 1 and first_seq != position["samples_seen"]:
                launch.log.warning("data stream starts at %d, checkpoint position is %d", first_seq,
                                   position["samples_seen"])
        clip = batch["clip"].to(device, non_blocking=True)
        enc_mask = batch["enc_mask"].to(device, non_blocking=True)
        dec_mask = batch["dec_mask"].to(device, non_blocking=True)
        set_lr(optimizer, schedule(step))
        result = train_step(model, optimizer, functools.partial(_masked_loss, model, clip, enc_mask, dec_mask),
                            precision, scaler, cfg.optim.clip_grad, step)
        step += 1
        losses.append(result.loss)
        norms.append(result.grad_norm)
        timer.tick(clip.shape[0], clip.shape[0] * arch.num_patches)
        _maybe_fail(cfg, step, rank)

        last = step == total
        if step % cfg.run.log_every and step % cfg.run.checkpoint_every and not last:
            continue
        samples_seen = step * cfg.global_batch
        metrics = launch.mean_across_workers({"loss": sum(losses) / len(losses), "grad_norm": sum(norms) / len(norms),
                                              **timer.window()}, device)
        metrics["clips_per_s"] *= world  # throughput of the whole run, not one worker
        metrics["tokens_per_s"] *= world
        metrics.update(lr=schedule(step - 1), step=step, samples_seen=samples_seen,
                       epoch=samples_seen / loop_config["epoch_length"], attempt_start_step=start_step,
                       attempt_first_seq=first_seq)
        losses, norms = [], []
        if sink is not None:
            sink.log(step, metrics)
        if step % cfg.run.checkpoint_every == 0 or last:
            model_state, optim_state = checkpointing.full_state(model, optimizer, fsdp)
            write = None if rank else functools.partial(
                checkpointing.write_checkpoint, model=model, model_state=model_state, optim_state=optim_state,
                scaler=scaler, step=step, samples_seen=samples_seen, epoch=metrics["epoch"])
            checkpointing.report_checkpoint(metrics, write)
        else:
            ray.train.report(metrics)
    if sink is not None:
        sink.close()


def _masked_loss(model, clip, enc_mask, dec_mask):
    return model(clip, enc_mask, dec_mask)[0]


def _maybe_fail(cfg: PretrainConfig, step: int, rank: int) -> None:
    """Testing only (`debug.fail_at_step`): kill this worker process once, to exercise restart-from-checkpoint."""
    if cfg.debug.fail_at_step != step or rank != 0:
        return
    marker = Path(cfg.run.run_dir) / FAIL_MARKER
    if marker.exists():
        return
    # A crash some time after the last checkpoint: wait until Ray Train has registered it (the controller collects
    # reports by polling; a process dying right after `report` can lose that report, and then restarts earlier).
    saved = step // cfg.run.checkpoint_every * cfg.run.checkpoint_every
    deadline = time.monotonic() + 60
    while saved and checkpointing.latest_position(cfg.run.run_dir).get("step", 0) < saved:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"killed at step {step}\n")
    launch.log.warning("debug.fail_at_step: killing worker process %d at step %d", os.getpid(), step)
    os._exit(1)


if __name__ == "__main__":
    main()
