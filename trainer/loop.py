"""The one training loop: every recipe (pre-training, post-pre-training and fine-tuning) runs through it.

A recipe supplies only what is its own, as a `Task` built on each worker: the model (seeded, before any checkpoint
is loaded), the loss of one batch, and optionally a validation. The loop owns the rest, in one place:

- driver: `prepare` indexes the shards and derives the run's length (a bad path or an empty split stops the script
  here, before any worker starts); `fit` connects to Ray, records the resolved config, starts the resumable data
  stream (trainer/data.py) and a TorchTrainer over `train_worker`, and exports the final model to `<run_dir>/model`.
- worker: seed -> task -> restore the weights of the checkpoint Ray Train hands back -> wrap (DDP or FSDP through
  Ray Train, then torch.compile) -> AdamW and its restored state -> per step: lr from the schedule, `train_step`
  (one precision path, trainer/step.py), throughput -> a report every `run.log_every` steps, a report with a
  checkpoint every `run.checkpoint_every` steps and at the end, validation where the task asks for it.

The rhythm depends on the step alone, so every worker calls `ray.train.report` the same number of times,
and a run restarted after its last step reports nothing on every rank. Faster paths (bf16 autocast, FSDP,
torch.compile, gradient checkpointing through the model config) and new jobs plug in here, once, for every recipe.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from trainer import checkpointing
from trainer.config import ConfigError, load_config
from trainer.data import ResumableDataset, SampleSpec
from trainer.metrics import MetricsSink, StepTimer
from trainer.optim import Schedule, build_optimizer, set_lr, warmup_problem
from trainer.plan import EpochPlan, ShardIndex
from trainer.step import Precision, StepResult, train_step
from videomae import storage

log = logging.getLogger("trainer")
FAIL_MARKER = ".debug_failed_once"

Batch = dict[str, torch.Tensor]


@dataclass
class Task:
    """What a recipe gives the loop on each worker."""

    model: torch.nn.Module  # bare, freshly built (and initialised) on this worker
    loss: Callable[[torch.nn.Module, Batch], torch.Tensor]  # (wrapped model, batch on the device) -> scalar loss
    validate: Callable[[torch.nn.Module], dict[str, float]] | None = None  # every rank calls it; metrics to report
    validate_every: int | None = None  # steps between validations; validation also runs at the end

    def validates_at(self, step: int, last: bool) -> bool:
        return self.validate is not None and (last or bool(self.validate_every and step % self.validate_every == 0))


@dataclass(frozen=True)
class Worker:
    rank: int
    world: int
    device: torch.device


@dataclass(frozen=True)
class Length:
    """How long a run is, from the data plan: optimizer steps, steps per epoch, clips per epoch."""

    total_steps: int
    steps_per_epoch: int
    epoch_length: int


MakeTask = Callable[[Any, dict, Worker], Task]  # (recipe config, the recipe's driver info, worker) -> Task


# ------------------------------------------------------------------------------------------------ command line
def recipe_config(kind: str, argv: list[str] | None, description: str, cfg=None):
    """Logging, then the recipe's config: `cfg` when given (tests), else `--config FILE [--set a.b=value ...]`
    validated (a bad key exits 2, naming it, before Ray starts)."""
    setup_logging()
    if cfg is not None:
        return cfg
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="YAML recipe under configs/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any key, e.g. --set optim.max_steps=100 (repeatable)")
    args = parser.parse_args(argv)
    return validate_or_exit(lambda: load_config(kind, args.config, args.overrides))


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=False)
    logging.getLogger("trainer").setLevel(logging.INFO)


def fail(message: str) -> None:
    """A config/data problem found on the driver: say it and exit before any worker starts."""
    log.error("%s", message)
    raise SystemExit(2)


def validate_or_exit(build: Callable[[], Any]) -> Any:
    """Run a driver-side check (index the shards, read labels); a ValueError becomes a clean exit naming the key."""
    try:
        return build()
    except (ConfigError, ValueError, FileNotFoundError, KeyError) as e:
        fail(str(e))


# ------------------------------------------------------------------------------------------------ driver
def connect_ray() -> None:
    """`RAY_ADDRESS` (set by `ray job submit`) selects a cluster; without it a local Ray starts in-process."""
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        ray.init(log_to_driver=True)
    # Deterministic block order: a seeded run sees the same first batch, and a resume continues the same sequence.
    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True
    # Per-operator progress bars flood job logs; the trainer logs its own progress (trainer/metrics.py).
    ctx.enable_progress_bars = False


def prepare(cfg, sources: list[str] | None = None, labeled: bool = False) -> tuple[EpochPlan, Length]:
    """Index the shards (the rows of `data.split`, of `sources`, labeled ones only if `labeled`) and derive the
    run's length: `optim.max_steps`, else `optim.epochs` over the data."""
    index = ShardIndex.build(cfg.data.paths, cfg.data.split, sources, labeled, cfg.data.storage_options)
    plan = EpochPlan(index, cfg.run.seed, cfg.data.weights, cfg.data.chunks_per_unit)
    steps_per_epoch = max(1, plan.mean_epoch_length // cfg.global_batch)
    total = cfg.optim.max_steps or math.ceil(cfg.optim.epochs * steps_per_epoch)
    problem = warmup_problem(cfg.optim, total, steps_per_epoch)
    if problem:
        log.warning("%s", problem)
    return plan, Length(total, steps_per_epoch, plan.mean_epoch_length)


def fit(cfg, make_task: MakeTask, plan: EpochPlan, length: Length, info: dict | None = None):
    """Train on Ray Train and export the final model; returns Ray's Result. `info` (JSON-able) reaches `make_task`."""
    connect_ray()
    run = cfg.run
    checkpointing.save_resolved_config(run.run_dir, cfg.model_dump(mode="json"), run.storage_options)
    dataset = ResumableDataset(plan, SampleSpec.from_config(cfg), run.run_dir, length.total_steps * cfg.global_batch,
                               cfg.data, run.storage_options)
    loop_config = {"config": cfg.model_dump(mode="json"), "length": asdict(length), "info": info or {}}
    worker_loop = functools.partial(train_worker, make_task, type(cfg))
    result = torch_trainer(worker_loop, loop_config, cfg, datasets={"train": dataset}).fit()
    if result.error:
        raise result.error
    exported = checkpointing.export_model(run.run_dir, result.checkpoint.path, run.storage_options)
    log.info("done: final metrics %s; model exported to %s", result.metrics, exported)
    return result


def torch_trainer(loop: Callable[[dict], None], loop_config: dict[str, Any], cfg, datasets: dict | None = None):
    """A TorchTrainer from the recipe's `scaling` and `run` sections (same name + storage = resume)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    s, run = cfg.scaling, cfg.run
    resources = {"CPU": s.cpus_per_worker, **({"GPU": 1} if s.use_gpu else {})}
    path, filesystem = run.storage, None
    if run.storage_options:  # Ray Train takes a pyarrow filesystem for options fsspec would otherwise need
        filesystem, path = storage.arrow_filesystem(run.storage, run.storage_options)
    run_config = RunConfig(name=run.name, storage_path=path, storage_filesystem=filesystem,
                           failure_config=FailureConfig(max_failures=run.max_failures),
                           checkpoint_config=CheckpointConfig(num_to_keep=run.keep_checkpoints))
    return TorchTrainer(loop, train_loop_config=loop_config, run_config=run_config, datasets=datasets,
                        scaling_config=ScalingConfig(num_workers=s.num_workers, use_gpu=s.use_gpu,
                                                     resources_per_worker=resources),
                        torch_config=TorchConfig(backend="nccl" if s.use_gpu else "gloo"))


# ------------------------------------------------------------------------------------------------ workers
def train_worker(make_task: MakeTask, config_type: type, loop_config: dict) -> None:
    """The loop on one Ray Train worker (TorchTrainer's train_loop_per_worker)."""
    import ray.train
    import ray.train.torch

    cfg = config_type.model_validate(loop_config["config"])
    length = Length(**loop_config["length"])
    total = length.total_steps
    ctx = ray.train.get_context()
    worker = Worker(ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device())
    setup_logging()
    torch.manual_seed(cfg.run.seed)  # the same init on every rank, then the checkpoint's weights if this run resumes
    task = make_task(cfg, loop_config["info"], worker)
    model, optimizer, scaler, position = _setup(task.model, cfg, worker.device)
    step = start = position["step"]
    if step >= total:  # restarted after its last checkpoint: nothing left to train (no report, on every rank)
        log.info("run already complete at step %d of %d", step, total)
        return
    precision = Precision.resolve(cfg.scaling.precision, worker.device)
    schedule = Schedule.from_config(cfg.optim, cfg.lr_scale, total, length.steps_per_epoch)
    sink = MetricsSink(cfg.run.run_dir, total, cfg.run.tensorboard) if worker.rank == 0 else None
    timer, results, first_seq = StepTimer(), [], None
    tokens_per_clip = checkpointing.unwrap(model).cfg.num_patches
    batches = ray.train.get_dataset_shard("train").iter_torch_batches(
        batch_size=cfg.data.batch_size * cfg.data.num_sample, drop_last=True,
        prefetch_batches=cfg.data.prefetch_batches)
    model.train()
    for batch in batches:
        if step >= total:
            break
        if first_seq is None:
            first_seq = int(batch["seq"].min())
            if worker.world == 1 and first_seq != position["samples_seen"]:
                log.warning("data stream starts at %d, checkpoint position is %d", first_seq, position["samples_seen"])
        batch = {k: v.to(worker.device, non_blocking=True) for k, v in batch.items()}
        set_lr(optimizer, schedule(step))
        results.append(train_step(model, optimizer, functools.partial(task.loss, model, batch), precision, scaler,
                                  cfg.optim.clip_grad, step))
        step += 1
        timer.tick(len(batch["clip"]), len(batch["clip"]) * tokens_per_clip)
        _maybe_fail(cfg, step, worker.rank)

        last = step == total
        validating = task.validates_at(step, last)
        saving = step % cfg.run.checkpoint_every == 0 or last
        if step % cfg.run.log_every and not saving and not validating:
            continue
        metrics, results = _window(results, timer, worker), []
        samples_seen = step * cfg.global_batch
        metrics.update(lr=schedule(step - 1), step=step, samples_seen=samples_seen,
                       epoch=samples_seen / length.epoch_length, attempt_start_step=start, attempt_first_seq=first_seq)
        if validating:
            metrics.update(task.validate(model))
        if sink is not None:
            sink.log(step, metrics)
        if not saving:
            ray.train.report(metrics)
            continue
        model_state, optim_state = checkpointing.full_state(model, optimizer, cfg.scaling.strategy == "fsdp")
        write = None if worker.rank else functools.partial(
            checkpointing.write_checkpoint, model=model, model_state=model_state, optim_state=optim_state,
            scaler=scaler, step=step, samples_seen=samples_seen, epoch=metrics["epoch"])
        checkpointing.report_checkpoint(metrics, write)
    if sink is not None:
        sink.close()


def _setup(model: torch.nn.Module, cfg, device: torch.device):
    """Restore -> wrap -> compile -> optimizer (+ restored state): (model, optimizer, scaler, position)."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    # as_directory: the checkpoint itself when it is on local storage, else a download removed on exit (to_directory
    # without a path left a full copy in /tmp/checkpoint_tmp_* on every restart).
    with checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext() as ckpt_dir:
        position = checkpointing.restore_model(ckpt_dir, model) if ckpt_dir else {"step": 0, "samples_seen": 0}
        model = wrap_model(model, cfg.scaling.strategy)
        if cfg.model.compile:
            model = torch.compile(model)
        optimizer = build_optimizer(checkpointing.unwrap(model), cfg.optim)
        scaler = torch.amp.GradScaler(device.type, enabled=False)  # bf16/fp32: no loss scaling
        if ckpt_dir is not None:
            checkpointing.restore_optimizer(ckpt_dir, model, optimizer, scaler, cfg.scaling.strategy == "fsdp")
    return model, optimizer, scaler, position


def _window(results: list[StepResult], timer: StepTimer, worker: Worker) -> dict[str, float]:
    """Loss, grad norm and throughput since the last report, averaged over workers (every rank calls it)."""
    n = max(len(results), 1)
    local = {"loss": sum(r.loss for r in results) / n, "grad_norm": sum(r.grad_norm for r in results) / n,
             **timer.window()}
    metrics = mean_across_workers(local, worker.device)
    metrics["clips_per_s"] *= worker.world  # throughput of the whole run, not one worker
    metrics["tokens_per_s"] *= worker.world
    return metrics


def _maybe_fail(cfg, step: int, rank: int) -> None:
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
    log.warning("debug.fail_at_step: killing worker process %d at step %d", os.getpid(), step)
    os._exit(1)


def wrap_model(model: torch.nn.Module, strategy: str) -> torch.nn.Module:
    """DDP (or FSDP for the large presets) through Ray Train; moves the model to the worker's device."""
    import ray.train.torch

    kwargs = {"use_orig_params": True} if strategy == "fsdp" else {}  # per-parameter wd/lr groups need orig params
    return ray.train.torch.prepare_model(model, parallel_strategy=strategy, parallel_strategy_kwargs=kwargs)


def mean_across_workers(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar metrics over all workers (every rank must call it)."""
    if _world() == 1:
        return values
    keys = sorted(values)
    summed = sum_across_workers([float(values[k]) for k in keys], device)
    return {k: v / _world() for k, v in zip(keys, summed, strict=True)}


def sum_across_workers(values: list[float], device: torch.device) -> list[float]:
    """Sums over all workers (every rank must call it)."""
    import torch.distributed as dist

    if _world() == 1:
        return values
    t = torch.tensor(values, device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
