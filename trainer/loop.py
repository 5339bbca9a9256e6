"""The one training loop: every recipe (pre-training, post-pre-training and fine-tuning) runs through it.

A recipe supplies only what is its own, as a `Task` built on each worker: the model (seeded, before any checkpoint
is loaded), the loss of one batch, and optionally a validation. The loop owns the rest, in one place:

- driver: `prepare` indexes the shards and derives the run's length (a bad path or an empty split stops the script
  here, before any worker starts); `fit` connects to Ray, records the resolved config, starts a TorchTrainer over
  `train_worker`, raises a non-finite-loss stop, and exports the final model to `<run_dir>/model`.
- worker: seed -> task -> restore the weights of the checkpoint Ray Train hands back -> attention kernel -> wrap (DDP
  through Ray Train, or FSDP2 `fully_shard`), then torch.compile -> fused AdamW and its restored state -> this
  worker's data streams from the checkpoint's position (trainer/data.py `worker_batches`) -> per step: lr from the
  schedule, `train_step` over `optim.accum_steps` micro-batches (one precision path, the gradient all-reduce skipped
  on all but the last: trainer/step.py), throughput -> a report every `run.log_every` steps, a report with a
  checkpoint every `run.checkpoint_every` steps and at the end, validation where the task asks for it.

A step is an optimizer step: the schedule, the logged step, `samples_seen` (+ the effective batch) and every
checkpoint count them, so a checkpoint always falls on an accumulation boundary and a resume continues the data at
the next step's first micro-batch.

The rhythm depends on the step alone, so every worker calls `ray.train.report` the same number of times, and a run
restarted after its last step reports nothing on every rank. The fast paths (2+ workers, FSDP, bf16 autocast,
torch.compile, gradient checkpointing through the model config) live here, once, for every recipe (docs/training.md
"Fast paths"); new jobs plug in here too.
"""

from __future__ import annotations

import contextlib
import functools
import json
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
from trainer.collectives import gather_objects, mean_across_workers, world
from trainer.config import ConfigError, load_config
from trainer.data import SampleSpec, to_device, worker_batches
from trainer.metrics import MetricsSink, StepTimer
from trainer.optim import Schedule, build_optimizer, set_lr, warmup_problem
from trainer.plan import EpochPlan, ShardIndex
from trainer.step import NonFiniteLossError, Precision, StepResult, train_step
from videomae import storage
from videomae.configfile import config_parser
from videomae.layers import set_attention

log = logging.getLogger("trainer")
FAIL_MARKER = ".debug_failed_once"
STOP_FILE = "stopped.json"  # written by rank 0 when a non-finite loss stops the run; fit() raises its reason

Batch = dict[str, torch.Tensor]


@dataclass
class Task:
    """What a recipe gives the loop on each worker."""

    model: torch.nn.Module  # bare, freshly built (and initialised) on this worker
    loss: Callable[[torch.nn.Module, Batch], torch.Tensor]  # (wrapped model, batch on the device) -> scalar loss
    # (wrapped model, step) -> metrics to report; every rank calls it at the same steps
    validate: Callable[[torch.nn.Module, int], dict[str, float]] | None = None
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
def recipe_config(config_type: type, argv: list[str] | None, description: str, cfg=None):
    """Logging, then the recipe's config: `cfg` when given (tests), else `--config FILE [--set a.b=value ...]`
    validated (a bad key exits 2, naming it, before Ray starts)."""
    setup_logging()
    if cfg is not None:
        return cfg
    args = config_parser(description, "YAML recipe under configs/", "optim.max_steps=100").parse_args(argv)
    return validate_or_exit(lambda: load_config(config_type, args.config, args.overrides))


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

    if not ray.is_initialized():
        if not sys.stdout.isatty():  # a log file or a job's log: workers' lines without colour codes
            os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        ray.init(log_to_driver=True)


def prepare(cfg, sources: list[str] | None = None, labeled: bool = False) -> tuple[EpochPlan, Length]:
    """Index the shards (the rows of `data.split`, of `sources`, labeled ones only if `labeled`) and derive the
    run's length: `optim.max_steps`, else `optim.epochs` over the data."""
    index = ShardIndex.build(cfg.data.paths, cfg.data.split, sources, labeled, cfg.data.storage_options)
    plan = EpochPlan(index, cfg.run.seed, cfg.data.weights, cfg.data.chunks_per_unit)
    if plan.mean_epoch_length < cfg.streams:
        raise ValueError(f"data.streams: {cfg.streams} streams over an epoch of {plan.mean_epoch_length} clips")
    steps_per_epoch = max(1, plan.mean_epoch_length // cfg.global_batch)
    total = cfg.optim.max_steps or math.ceil(cfg.optim.epochs * steps_per_epoch)
    log.info("effective batch %d clips per optimizer step = data.batch_size %d x scaling.num_workers %d x "
             "optim.accum_steps %d; lr scaled by %.4g", cfg.global_batch, cfg.data.batch_size,
             cfg.scaling.num_workers, cfg.optim.accum_steps, cfg.lr_scale)
    problem = warmup_problem(cfg.optim, total, steps_per_epoch)
    if problem:
        log.warning("%s", problem)
    return plan, Length(total, steps_per_epoch, plan.mean_epoch_length)


def fit(cfg, make_task: MakeTask, plan: EpochPlan, length: Length, info: dict | None = None):
    """Train on Ray Train and export the final model; returns Ray's Result. `info` (JSON-able) reaches `make_task`."""
    connect_ray()
    run = cfg.run
    checkpointing.save_resolved_config(run.run_dir, cfg.model_dump(mode="json"), run.storage_options)
    stop_file = storage.join(run.run_dir, STOP_FILE)
    if storage.exists(stop_file, run.storage_options):  # a rerun after a stop (lower lr ...): resume, forget the stop
        storage.remove(stop_file, run.storage_options)
    loop_config = {"config": cfg.model_dump(mode="json"), "length": asdict(length), "info": info or {}}
    # Every worker reads its own streams of the plan, from the position of the checkpoint it restores (trainer/data.py).
    worker_loop = functools.partial(train_worker, make_task, type(cfg), plan)
    result = torch_trainer(worker_loop, loop_config, cfg).fit()
    if result.error:
        raise result.error
    stopped = storage.read_text_or_none(stop_file, run.storage_options)
    if stopped:
        raise NonFiniteLossError(json.loads(stopped)["reason"])
    exported = checkpointing.export_model(run.run_dir, result.checkpoint.path, run.storage_options)
    log.info("done: final metrics %s; model exported to %s", result.metrics, exported)
    return result


def torch_trainer(loop: Callable[[dict], None], loop_config: dict[str, Any], cfg):
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
    return _trainer_class(TorchTrainer)(loop, train_loop_config=loop_config, run_config=run_config,
                        scaling_config=ScalingConfig(num_workers=s.num_workers, use_gpu=s.use_gpu,
                                                     resources_per_worker=resources),
                        torch_config=TorchConfig(backend="nccl" if s.use_gpu else "gloo"))


def _trainer_class(torch_trainer_cls: type) -> type:
    """TorchTrainer without Ray Train's PlacementGroupCleaner. Ray 2.60's cleaner (a detached actor that removes the
    run's placement group once the controller is dead) asks the State API whether the controller lives, and takes an
    actor the API did not return for a dead one: on a loaded 2-core machine it removed a live run's placement group at
    worker-group start ("Detected that the Ray Train controller actor (...) is dead. Cleaning up placement group",
    then ControllerError "Destroying worker since its placement group was removed"; ray-project/ray#65447 review
    notes the same false death). Without it the placement group lives as long as the job's driver, as before Ray
    added the cleaner."""

    class Trainer(torch_trainer_cls):
        def _create_default_callbacks(self):
            return [c for c in super()._create_default_callbacks()
                    if type(c).__name__ != "PlacementGroupCleanerCallback"]

    return Trainer


# ------------------------------------------------------------------------------------------------ workers
def train_worker(make_task: MakeTask, config_type: type, plan: EpochPlan, loop_config: dict) -> None:
    """The loop on one Ray Train worker (TorchTrainer's train_loop_per_worker)."""
    import ray.train
    import ray.train.torch

    cfg = config_type.model_validate(loop_config["config"])
    length = Length(**loop_config["length"])
    ctx = ray.train.get_context()
    worker = Worker(ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device())
    setup_logging()
    torch.manual_seed(cfg.run.seed)  # the same init on every rank, then the checkpoint's weights if this run resumes
    task = make_task(cfg, loop_config["info"], worker)
    checkpointing.seed_rank(cfg.run.seed, worker.rank)  # own drop-path/mixup draws per rank; a checkpoint restores its
    model, optimizer, scaler, position = _setup(task.model, cfg, worker)
    if position["step"] >= length.total_steps:  # restarted after its last checkpoint: nothing left (no report anywhere)
        log.info("run already complete at step %d of %d", position["step"], length.total_steps)
        return
    if position.get("streams", 1) != cfg.streams and position["step"]:
        log.warning("data.streams is %d, the checkpoint's run read %d: the current epoch's samples are re-dealt, so a "
                    "few may be repeated or skipped until it ends", cfg.streams, position.get("streams", 1))
    end = position["samples_seen"] + (length.total_steps - position["step"]) * cfg.global_batch
    batches = worker_batches(plan, SampleSpec.from_config(cfg), cfg.data, streams=cfg.streams, rank=worker.rank,
                             world=worker.world, samples_seen=position["samples_seen"], samples_end=end,
                             prefetch=cfg.data.prefetch_batches)
    log.info("worker %d of %d: step %d, data position %d, streams %s", worker.rank, worker.world, position["step"],
             position["samples_seen"], _streams_of(cfg.streams, worker))
    _run(task, model, optimizer, scaler, batches, cfg, length, worker, position)


def _run(task: Task, model, optimizer, scaler, batches, cfg, length: Length, worker: Worker, position: dict) -> None:
    """Steps and the report/checkpoint rhythm, from the restored position to the end (or a non-finite loss)."""

    step = start = position["step"]
    samples_seen, total = position["samples_seen"], length.total_steps
    precision = Precision.resolve(cfg.scaling.precision, worker.device)
    schedule = Schedule.from_config(cfg.optim, cfg.lr_scale, total, length.steps_per_epoch)
    run = cfg.run
    sink = MetricsSink(run.run_dir, total, run.tensorboard, run.storage_options) if worker.rank == 0 else None
    window = Window(worker, StepTimer(), cfg.debug.log_data)
    tokens_per_clip = checkpointing.unwrap(model).cfg.num_patches
    model.train()
    skip_sync = functools.partial(skip_grad_sync, model)
    for micro in optimizer_steps(batches, cfg.optim.accum_steps):
        for batch in micro:
            window.seen(batch)
        set_lr(optimizer, schedule(step))
        t0 = time.perf_counter()
        losses = [functools.partial(_micro_loss, task, model, batch, worker.device) for batch in micro]
        try:
            window.results.append(train_step(model, optimizer, losses, precision, scaler, cfg.optim.clip_grad,
                                             step + 1, skip_sync))
        except NonFiniteLossError as e:  # every rank sees it at the same step (train_step agrees across workers)
            _stop(cfg, worker, sink, step + 1, f"{e}. {_resume_hint(position)}")
            return
        window.stepped(time.perf_counter() - t0)
        step += 1
        samples_seen += cfg.global_batch
        clips = sum(len(batch["clip"]) for batch in micro)
        window.timer.tick(clips, clips * tokens_per_clip)
        _maybe_fail(cfg, step, worker.rank)

        last = step == total
        validating = task.validates_at(step, last)
        saving = step % cfg.run.checkpoint_every == 0 or last
        if step % cfg.run.log_every and not saving and not validating:
            continue
        metrics = window.metrics()
        metrics.update(lr=schedule(step - 1), step=step, samples_seen=samples_seen,
                       epoch=samples_seen / length.epoch_length, attempt_start_step=start,
                       attempt_first_seq=window.first_seq)
        if validating:
            metrics.update(task.validate(model, step))
        if sink is not None:
            sink.log(step, metrics)
            if window.data is not None:
                sink.log_data(step, start, window.data)
        if not saving:
            # Not reported to Ray Train between checkpoints: `ray.train.report` waits until the controller has
            # collected the previous report (it polls), which cost ~1.6 s per call, 0.16 s a step at log_every 10 on
            # the nano run (bench/train_input.py); the metrics are in metrics.jsonl and TensorBoard already, and
            # every checkpoint (the last step always saves) reports them with the checkpoint.
            continue
        if sink is not None:
            sink.flush()  # the metrics so far reach the run directory with each checkpoint
        state = checkpointing.full_state(model, optimizer)
        where = {"step": step, "samples_seen": samples_seen, "epoch": metrics["epoch"], "streams": cfg.streams}
        write = None if worker.rank else functools.partial(checkpointing.write_checkpoint, model=model, state=state,
                                                           scaler=scaler, position=where)
        checkpointing.report_checkpoint(metrics, write)
        position = where
    if sink is not None:
        sink.close()
    if step < total:
        raise RuntimeError(f"the data stream ended at step {step} of {total}")


def _micro_loss(task: Task, model: torch.nn.Module, batch: Batch, device: torch.device) -> torch.Tensor:
    """One micro-batch's loss; its clips reach the device only now (one micro-batch of float clips at a time)."""
    return task.loss(model, to_device(batch, device))


def optimizer_steps(batches, accum_steps: int):
    """Group the worker's micro-batches into optimizer steps of `accum_steps` each (a stream that ends inside a step
    leaves that step out; `_run` then reports the short stream)."""
    micro: list[Batch] = []
    for batch in batches:
        micro.append(batch)
        if len(micro) == accum_steps:
            yield micro
            micro = []


@contextlib.contextmanager
def skip_grad_sync(model: torch.nn.Module):
    """Backward passes inside do not average the gradients over workers (micro-steps before the last of an optimizer
    step): DDP's `no_sync`, FSDP2's `set_requires_gradient_sync(False)`; one worker, no wrapper: nothing to skip."""
    inner = model._orig_mod if hasattr(model, "_orig_mod") else model  # torch.compile wraps DDP/FSDP, not inside
    if isinstance(inner, torch.nn.parallel.DistributedDataParallel):
        with inner.no_sync():
            yield
    elif hasattr(inner, "set_requires_gradient_sync"):  # FSDP2's FSDPModule
        inner.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            inner.set_requires_gradient_sync(True)
    else:
        yield


def _setup(model: torch.nn.Module, cfg, worker: Worker):
    """Restore -> wrap -> compile -> optimizer (+ restored state): (model, optimizer, scaler, position)."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    # as_directory: the checkpoint itself when it is on local storage, else a download removed on exit (to_directory
    # without a path left a full copy in /tmp/checkpoint_tmp_* on every restart).
    with checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext() as ckpt_dir:
        position = checkpointing.restore_model(ckpt_dir, model) if ckpt_dir else {"step": 0, "samples_seen": 0}
        precision = Precision.resolve(cfg.scaling.precision, worker.device)
        explicit = cfg.model.attention == "explicit" or (
            cfg.model.attention == "auto" and precision.bf16 and worker.device.type == "cpu")
        set_attention(model, fused=not explicit)
        model = wrap_model(model, cfg.scaling.strategy, worker.device)
        if cfg.model.compile:
            # On one worker the model is one graph (fullgraph: a graph break is an error, not a slow step). Wrapped by
            # DDP or FSDP it is compiled with the wrapper: Dynamo breaks the graph in DDP's own `_pre_forward`
            # (fullgraph there fails with "DDP ... set_runtime_stats_and_log") and splits the model at DDP's gradient
            # buckets, so that the all-reduce of one bucket overlaps the backward of the next (torch's DDPOptimizer).
            model = torch.compile(model, fullgraph=worker.world == 1)
        optimizer = build_optimizer(checkpointing.unwrap(model), cfg.optim)
        scaler = torch.amp.GradScaler(worker.device.type, enabled=False)  # bf16/fp32: no loss scaling
        if ckpt_dir is not None:
            checkpointing.restore_optimizer(ckpt_dir, model, optimizer, scaler, worker.rank, worker.world)
    return model, optimizer, scaler, position


class Window:
    """What the loop gathers between two reports: step results, throughput, the first step's time (compilation
    included), and with `debug.log_data` the data position of every clip each rank trained on."""

    def __init__(self, worker: Worker, timer: StepTimer, log_data: bool):
        self.worker, self.timer, self.log_data = worker, timer, log_data
        self.results: list[StepResult] = []
        self.first_seq: int | None = None
        self.first_step_s: float | None = None
        self.data: list[list[int]] | None = None  # per rank: the seqs of the last window (rank order)
        self._seqs: list[torch.Tensor] = []
        self._compute: list[float] = []  # seconds of each train_step (no data wait)

    def seen(self, batch: Batch) -> None:
        clips = batch["seq"][batch["repeat"] == 0]  # one row per clip: its repeats share the seq
        if self.first_seq is None:
            self.first_seq = int(clips.min())
        if self.log_data:
            self._seqs.append(clips)

    def stepped(self, seconds: float) -> None:
        if self.first_step_s is None:
            self.first_step_s = seconds
        self._compute.append(seconds)

    def metrics(self) -> dict[str, float]:
        """Loss, grad norm and throughput since the last report, averaged over workers (every rank calls it)."""
        n = max(len(self.results), 1)
        local = {"loss": sum(r.loss for r in self.results) / n,
                 "grad_norm": sum(r.grad_norm for r in self.results) / n,
                 "first_step_s": self.first_step_s or 0.0,
                 "compute_time": sum(self._compute) / max(len(self._compute), 1), **self.timer.window()}
        compiled = _compile_seconds()
        if compiled is not None:
            local["compile_s"] = compiled
        metrics = mean_across_workers(local, self.worker.device)
        metrics["clips_per_s"] *= self.worker.world  # throughput of the whole run, not one worker
        metrics["tokens_per_s"] *= self.worker.world
        if self.log_data:
            mine = torch.cat(self._seqs) if self._seqs else torch.zeros(0, dtype=torch.int64)
            self.data = gather_objects(mine.tolist())
        self.results, self._seqs, self._compute = [], [], []
        return metrics


def _compile_seconds() -> float | None:
    """Seconds torch.compile has spent in this process (Dynamo's own timer), None without compilation."""
    try:
        from torch._dynamo.utils import calculate_time_spent

        spent = calculate_time_spent().get("total_wall_time", 0.0)
    except Exception:  # a private API: without it the first step's time still shows the cost
        return None
    return float(spent) if spent else None


def _streams_of(streams: int, worker: Worker) -> list[int]:
    k = streams // worker.world
    return list(range(worker.rank * k, (worker.rank + 1) * k))


def _resume_hint(position: dict) -> str:
    if position["step"] == 0:
        return "No checkpoint was written yet"
    return (f"The weights were not updated; the last checkpoint (step {position['step']}) is intact: rerun with the "
            "same run.name and run.storage_path to resume from it")


def _stop(cfg, worker: Worker, sink: MetricsSink | None, step: int, message: str) -> None:
    """A non-finite loss: every rank leaves the loop at the same step; rank 0 records why (the driver raises it)."""
    log.error("worker %d: %s", worker.rank, message)
    if sink is not None:
        sink.log(step, {"stopped": message})
        sink.close()
        storage.write_text(storage.join(cfg.run.run_dir, STOP_FILE), json.dumps({"step": step, "reason": message}),
                           cfg.run.storage_options)

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


def wrap_model(model: torch.nn.Module, strategy: str, device: torch.device) -> torch.nn.Module:
    """Move the model to the worker's device and wrap it: DDP through Ray Train's `prepare_model`, or FSDP2.

    FSDP is FSDP2's `fully_shard`, on every transformer block and then the whole model (the torchtitan layout), not
    Ray Train's `prepare_model(parallel_strategy="fsdp")`: that is FSDP1 as one flat unit (whole weights gathered for
    the whole forward), and both Ray 2.60 ("FSDP is only available with GPU-enabled training") and torch 2.14's FSDP1
    ("FSDP needs a non-CPU accelerator device") refuse it on CPU. fully_shard runs on CPU/gloo as on GPU/NCCL, so the
    tests execute the path clusters use. Parameter names are unchanged (optimizer groups, checkpoints)."""
    import ray.train.torch

    if strategy != "fsdp" or world() == 1:
        return ray.train.torch.prepare_model(model, parallel_strategy="ddp")
    from torch.distributed.fsdp import fully_shard

    from videomae.layers import Block

    model = model.to(device)
    for block in [m for m in model.modules() if isinstance(m, Block)]:
        fully_shard(block)
    fully_shard(model)
    return model
