"""AdamW with the reference's parameter groups and its per-step warmup + cosine learning-rate schedule.

Groups follow OpenGVLab/VideoMAEv2 `optim_factory.py`: no weight decay on 1-D parameters (biases, norms, q/v biases,
layer scales), on `.bias`, and on what the model lists in `no_weight_decay()` (the mask token; the position table is
a fixed buffer, not a parameter). Layer-wise lr decay (fine-tuning): the cube embedding is layer 0, block i is layer
i + 1, everything after the blocks is layer depth + 1, and layer l's lr is scaled by decay ** (depth + 1 - l).

The schedule is `utils.cosine_scheduler` of the reference: linear warmup from `warmup_lr` to `lr` over the warmup
steps, then half a cosine from `lr` to `min_lr`, evaluated per optimizer step; lr, min_lr and warmup_lr are the
recipe's values times global batch / 256 (trainer/config.py `lr_scale`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trainer.checkpointing import served
from trainer.config import OptimSection


def layer_id(name: str, depth: int) -> int:
    """The reference's `get_num_layer_for_vit` for our parameter names (encoder or classifier)."""
    name = name.removeprefix("encoder.")
    if name.startswith(("patch_embed", "pos_embed", "cls_token", "mask_token")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def param_groups(model: torch.nn.Module, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """Parameter groups with `weight_decay` and an `lr_scale` each (1.0 without layer decay)."""
    _, prefix = served(model)  # a training wrapper's student: its names decide, the wrapper's own are a last layer
    skip = {prefix + n for n in model.no_weight_decay()} if hasattr(model, "no_weight_decay") else set()
    depth = model.cfg.depth
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim == 1 or name.endswith(".bias") or name in skip
        if layer_decay >= 1.0:
            layer = 0
        else:
            layer = layer_id(name.removeprefix(prefix), depth) if name.startswith(prefix) else depth + 1
        key = (layer, no_decay)
        if key not in groups:
            scale = layer_decay ** (depth + 1 - layer) if layer_decay < 1.0 else 1.0
            groups[key] = {"params": [], "names": [], "weight_decay": 0.0 if no_decay else weight_decay,
                           "lr_scale": scale}
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    return [groups[k] for k in sorted(groups)]


def build_optimizer(model: torch.nn.Module, cfg: OptimSection) -> torch.optim.AdamW:
    groups = param_groups(model, cfg.weight_decay, cfg.layer_decay)
    for g in groups:
        g.pop("names")
    # Fused AdamW (one kernel for the whole update instead of a loop of elementwise passes) where torch has it for the
    # parameters' device (CPU and CUDA; FSDP's DTensor shards included).
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused)


@dataclass(frozen=True)
class Schedule:
    """lr per optimizer step (0-based)."""

    lr: float
    min_lr: float
    warmup_lr: float
    warmup_steps: int
    total_steps: int

    @classmethod
    def from_config(cls, cfg: OptimSection, lr_scale: float, total_steps: int, steps_per_epoch: int) -> Schedule:
        warmup = requested_warmup(cfg, steps_per_epoch)
        return cls(cfg.lr * lr_scale, cfg.min_lr * lr_scale, cfg.warmup_lr * lr_scale, min(warmup, total_steps),
                   total_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            # np.linspace(warmup_lr, lr, warmup_steps): both ends included, as the reference.
            frac = step / max(self.warmup_steps - 1, 1)
            return self.warmup_lr + (self.lr - self.warmup_lr) * frac
        i = step - self.warmup_steps
        n = max(self.total_steps - self.warmup_steps, 1)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * min(i, n) / n))


def requested_warmup(cfg: OptimSection, steps_per_epoch: int) -> int:
    """Warmup steps as the config asks: `warmup_steps`, else `warmup_epochs` of the run's epochs."""
    return cfg.warmup_steps if cfg.warmup_steps is not None else round(cfg.warmup_epochs * steps_per_epoch)


def warmup_problem(cfg: OptimSection, total_steps: int, steps_per_epoch: int) -> str | None:
    """What to tell the user when the warmup asked for is longer than the run (the schedule then warms up over the
    whole run and never reaches its cosine part), else None."""
    warmup = requested_warmup(cfg, steps_per_epoch)
    if warmup <= total_steps:
        return None
    key = "optim.warmup_steps" if cfg.warmup_steps is not None else "optim.warmup_epochs"
    return (f"{key}: a warmup of {warmup} steps is longer than the run ({total_steps} steps); the lr rises over the "
            f"whole run and never decays. Lower {key} or lengthen the run (optim.max_steps / optim.epochs).")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
