"""Training checkpoints: what one holds, how a run restores one, and where the data stream restarts.

A training checkpoint is a Ray Train checkpoint directory (docs/architecture.md "Model directories and checkpoints"):

    model/             our model directory (`videomae.modeldir.MODEL_SUBDIR`): `videomae.load_model(ckpt_dir)` works
    train_state.pt     optimizer state (keyed by parameter name), grad scaler, every worker's RNG states, the step
    position.json      {"step", "samples_seen", "epoch", "streams"}: the data position, readable without torch

Weights and optimizer state are written whole and by parameter name, whatever the strategy: DDP, FSDP (gathered from
the shards) and torch.compile write the same files, with no `module.` or `_orig_mod.` prefixes (the reference's
`--resume` of a compiled run breaks on those), and a run can resume under another strategy. Master weights and
optimizer state are fp32 under bf16 autocast too.

The schedule is a pure function of the step, so its state is the step. Each worker starts its data streams at the
position of the checkpoint it restored (trainer/data.py `worker_batches`), so data and weights always agree.
`latest_position(run_dir)` reads the position of the checkpoint Ray Train will hand back on a (re)start, from its
checkpoint-manager snapshot, without torch.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from trainer.collectives import gather_objects
from videomae import storage
from videomae.checkpoint import load_strict
from videomae.model import save_model
from videomae.modeldir import MODEL_SUBDIR, WEIGHTS_FILE

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
POSITION_FILE = "position.json"
SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"  # Ray Train V2's record of registered checkpoints
CONFIG_FILE = "config.yaml"


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside DDP / torch.compile wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def served(model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """The model a checkpoint's model directory holds, and the prefix of its weights in the training model: the bare
    model itself, or, for a training wrapper that names a `served` submodule (distillation's student beside its
    feature projection, trainer/distill.py), that submodule. The wrapper's other weights are training state: they
    travel in train_state.pt (`extra_weights`), so the model directory is one the API and `load_model` read."""
    bare = unwrap(model)
    name = getattr(bare, "served", None)
    return (getattr(bare, name), name + ".") if isinstance(name, str) else (bare, "")


@dataclass
class FullState:
    """What rank 0 writes: whole weights and optimizer state by parameter name (CPU), and every rank's RNG states."""

    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: list[dict[str, Any]]


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> FullState:
    """Gather the training state onto rank 0 (FSDP shards are unsharded; the other ranks get empty dicts). Every rank
    must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    weights, optim = get_state_dict(unwrap(model), optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return FullState(weights, optim, gather_objects(rng_state()))


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def seed_rank(seed: int, rank: int) -> None:
    """Per-rank RNGs (drop path, mixup draws), as the reference seeds each process with seed + rank."""
    torch.manual_seed(seed + rank)
    np.random.seed(seed + rank)
    random.seed(seed + rank)


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def write_checkpoint(directory: Path, model: torch.nn.Module, state: FullState, scaler: torch.amp.GradScaler | None,
                     position: dict[str, Any]) -> Path:
    """Fill `directory` with one training checkpoint (rank 0): `state` from `full_state`, `position` = position.json
    (`step`, `samples_seen`, `epoch`, `streams`)."""
    module, prefix = served(model)
    weights = {k.removeprefix(prefix): v for k, v in state.model.items() if k.startswith(prefix)}
    save_model(module, directory / MODEL_SUBDIR, state=weights)
    torch.save({
        "extra_weights": {k: v for k, v in state.model.items() if not k.startswith(prefix)},
        "optimizer": state.optimizer,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": state.rng,  # one entry per rank
        "step": position["step"],
    }, directory / STATE_FILE)
    (directory / POSITION_FILE).write_text(json.dumps(position) + "\n")
    return directory


def restore_model(directory: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load a training checkpoint's weights into the bare model (before wrapping); returns its position."""
    directory = Path(directory)
    _, prefix = served(model)
    weights = {prefix + k: v for k, v in load_file(str(directory / MODEL_SUBDIR / WEIGHTS_FILE)).items()}
    if prefix:  # a wrapper's own weights (trainer/distill.py's projection) are in the training state
        extra = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=False).get("extra_weights", {})
        weights.update(extra)
    load_strict(unwrap(model), weights, source=str(directory))
    return json.loads((directory / POSITION_FILE).read_text())


def restore_optimizer(directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler | None, rank: int, world: int) -> None:
    """Optimizer, scaler and this rank's RNG states of a training checkpoint (after the optimizer is built on the
    wrapped model; FSDP takes its shard of the whole state)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    state = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)
    optim = state["optimizer"]
    if all(isinstance(p, int) for g in optim["param_groups"] for p in g["params"]):
        optimizer.load_state_dict(optim)  # written by `optimizer.state_dict()` (checkpoints before parameter names)
    else:
        set_optimizer_state_dict(unwrap(model), optimizer, optim, options=StateDictOptions(full_state_dict=True))
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    rng = state["rng"]
    if isinstance(rng, dict):  # one state for all ranks (older checkpoints)
        set_rng_state(rng)
    elif len(rng) == world:
        set_rng_state(rng[rank])
    else:
        log.warning("checkpoint has RNG states of %d workers, this run has %d: fresh per-rank RNG", len(rng), world)


def report_checkpoint(metrics: dict, write) -> None:
    """`ray.train.report` with a checkpoint that `write(dir)` fills (rank 0 passes a writer, the others None)."""
    import ray.train

    if write is None:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


# ---------------------------------------------------------------------------------------- run directory
def latest_checkpoint_dir(run_dir: str, options: storage.Options = None) -> str | None:
    """The checkpoint Ray Train restores for this run: the latest one in its checkpoint-manager snapshot."""
    text = storage.read_text_or_none(storage.join(run_dir, SNAPSHOT_FILE), options)
    if not text:
        return None
    latest = json.loads(text).get("latest_checkpoint_result")
    if not latest:
        return None
    name = latest.get("checkpoint_dir_name") or PurePosixPath(latest.get("checkpoint", {}).get("path", "")).name
    return storage.join(run_dir, name) if name else None


def latest_position(run_dir: str, options: storage.Options = None) -> dict[str, Any]:
    """position.json of the checkpoint a (re)started run restores; {} for a fresh run."""
    ckpt = latest_checkpoint_dir(run_dir, options)
    text = storage.read_text_or_none(storage.join(ckpt, POSITION_FILE), options) if ckpt else None
    return json.loads(text) if text else {}


def save_resolved_config(run_dir: str, config: dict, options: storage.Options = None) -> None:
    """The fully resolved config (defaults and --set applied) beside the checkpoints, for the record."""
    import yaml

    storage.write_text(storage.join(run_dir, CONFIG_FILE), yaml.safe_dump(config, sort_keys=False), options)


def export_model(run_dir: str, checkpoint_path: str, options: storage.Options = None) -> str:
    """Copy the model directory of the run's checkpoint (Ray's `result.checkpoint.path`, a folder of the run
    directory) to `<run_dir>/model`, what the API loads; returns that location."""
    source = storage.join(run_dir, PurePosixPath(checkpoint_path).name, MODEL_SUBDIR)
    destination = storage.join(run_dir, MODEL_SUBDIR)
    storage.copy_files(source, destination, options, options)
    return destination
