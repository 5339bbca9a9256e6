"""What every recipe script shares on the driver: arguments, logging, Ray connection, the TorchTrainer around a loop,
and the few worker-side helpers (device, wrapping, cross-rank averages).

`RAY_ADDRESS` (set by `ray job submit`) selects a cluster; without it a local Ray starts in-process (DESIGN.md).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

import torch

from trainer.config import ConfigError, load_config

log = logging.getLogger("trainer")


def parse_args(kind: str, argv: list[str] | None, description: str):
    """`--config FILE [--set a.b=value ...]` -> the validated recipe config (ConfigError names a bad key)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="YAML recipe under configs/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override any key, e.g. --set optim.max_steps=100 (repeatable)")
    args = parser.parse_args(argv)
    return load_config(kind, args.config, args.overrides)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=False)
    logging.getLogger("trainer").setLevel(logging.INFO)


def fail(message: str) -> None:
    """A config/data problem found on the driver: say it and exit before any worker starts."""
    log.error("%s", message)
    raise SystemExit(2)


def connect_ray() -> None:
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        ray.init(log_to_driver=True)
    # Deterministic block order: a seeded run sees the same first batch, and a resume continues the same sequence.
    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True
    # Per-operator progress bars flood job logs; the trainer logs its own progress (trainer/metrics.py).
    ctx.enable_progress_bars = False


def torch_trainer(loop: Callable[[dict], None], loop_config: dict[str, Any], cfg, datasets: dict | None = None):
    """A TorchTrainer from the recipe's `scaling` and `run` sections (same name + storage = resume)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    s = cfg.scaling
    resources = {"CPU": s.cpus_per_worker, **({"GPU": 1} if s.use_gpu else {})}
    return TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=s.num_workers, use_gpu=s.use_gpu, resources_per_worker=resources),
        torch_config=TorchConfig(backend="nccl" if s.use_gpu else "gloo"),
        run_config=RunConfig(
            name=cfg.run.name,
            storage_path=cfg.run.storage,
            failure_config=FailureConfig(max_failures=cfg.run.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.run.keep_checkpoints),
        ),
        datasets=datasets,
    )


def validate_or_exit(build: Callable[[], Any]) -> Any:
    """Run a driver-side check (index the shards, read labels); a ValueError becomes a clean exit naming the key."""
    try:
        return build()
    except (ConfigError, ValueError, FileNotFoundError, KeyError) as e:
        fail(str(e))


# ------------------------------------------------------------------------------------------------ workers
def wrap_model(model: torch.nn.Module, strategy: str) -> torch.nn.Module:
    """DDP (or FSDP for the large presets) through Ray Train; moves the model to the worker's device."""
    import ray.train.torch

    kwargs = {"use_orig_params": True} if strategy == "fsdp" else {}  # per-parameter wd/lr groups need orig params
    return ray.train.torch.prepare_model(model, parallel_strategy=strategy, parallel_strategy_kwargs=kwargs)


def mean_across_workers(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar metrics over all workers (every rank must call it)."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist(), strict=True))


def sum_across_workers(values: list[float], device: torch.device) -> list[float]:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized() or dist.get_world_size() == 1:
        return values
    t = torch.tensor(values, device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()
