"""Training checkpoints: what one holds, how a run restores one, and where the data stream restarts.

A training checkpoint is a Ray Train checkpoint directory (docs/architecture.md "Model directories and checkpoints"):

    model/             our model directory (`videomae.modeldir.MODEL_SUBDIR`): `videomae.load_model(ckpt_dir)` works
    train_state.pt     optimizer, grad scaler and RNG states, and the step
    position.json      {"step", "samples_seen", "epoch"}: the data position, readable without torch

The schedule is a pure function of the step, so its state is the step. `latest_position(run_dir)` reads the position
of the checkpoint Ray Train will hand back on (re)start, from its checkpoint-manager snapshot, so that the data stream
and the restored weights agree (trainer/data.py `ResumableDataset`).
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from videomae import storage
from videomae.checkpoint import load_strict
from videomae.modeldir import MODEL_SUBDIR, WEIGHTS_FILE, save_model

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


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, fsdp: bool) -> tuple[dict | None, dict]:
    """Whole (unsharded) model weights (None: take them from the model) and optimizer state; under FSDP every rank
    must call this (it gathers)."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return None, optimizer.state_dict()


def write_checkpoint(directory: Path, model: torch.nn.Module, model_state: dict | None, optim_state: dict,
                     scaler: torch.amp.GradScaler | None, step: int, samples_seen: int, epoch: float) -> Path:
    """Fill `directory` with one training checkpoint (rank 0). `model_state`: gathered FSDP weights, else None."""
    bare = unwrap(model)
    if model_state is None:
        save_model(bare, directory / MODEL_SUBDIR)
    else:
        _save_state(bare, model_state, directory / MODEL_SUBDIR)
    torch.save({
        "optimizer": optim_state,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "step": step,
    }, directory / STATE_FILE)
    position = {"step": step, "samples_seen": samples_seen, "epoch": epoch}
    (directory / POSITION_FILE).write_text(json.dumps(position) + "\n")
    return directory


def _save_state(bare: torch.nn.Module, state: dict, directory: Path) -> None:
    # Gathered (FSDP) or plain weights, saved in our model format through a CPU copy of the architecture.
    clone = type(bare)(bare.cfg)
    clone.load_state_dict({k: v.detach().cpu() for k, v in state.items()}, strict=True)
    save_model(clone, directory)


def restore_model(directory: str | Path, model: torch.nn.Module) -> dict[str, Any]:
    """Load a training checkpoint's weights into the bare model (before wrapping); returns its position."""
    directory = Path(directory)
    load_strict(unwrap(model), load_file(str(directory / MODEL_SUBDIR / WEIGHTS_FILE)), source=str(directory))
    return json.loads((directory / POSITION_FILE).read_text())


def restore_optimizer(directory: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      scaler: torch.amp.GradScaler | None, fsdp: bool) -> None:
    """Optimizer, scaler and RNG states of a training checkpoint (after the optimizer is built on the wrapped model)."""
    state = torch.load(Path(directory) / STATE_FILE, map_location="cpu", weights_only=False)
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True))
    else:
        optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])


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
