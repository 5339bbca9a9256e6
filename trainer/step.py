"""One optimizer step, one precision path: autocast(enabled=...) forward, backward, clip, step; stop on a non-finite
loss (the reference exits there too: `engine_for_pretraining.py`, "Loss is {}, stopping training").

bf16 autocast on GPU needs no loss scaling; the GradScaler stays, disabled, so an fp16 path would only flip a flag.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss; continuing would only write a broken checkpoint."""


@dataclass(frozen=True)
class Precision:
    device_type: str  # "cuda" | "cpu"
    bf16: bool

    @classmethod
    def resolve(cls, setting: str, device: torch.device) -> Precision:
        # "auto": bf16 on GPU (the reference trains in fp16 with a loss scaler; bf16 needs none), fp32 on CPU.
        on_gpu = device.type == "cuda"
        bf16 = setting == "bf16" or (setting == "auto" and on_gpu)
        return cls(device.type, bf16)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16)


@dataclass
class StepResult:
    loss: float
    grad_norm: float


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, compute_loss: Callable[[], torch.Tensor],
               precision: Precision, scaler: torch.amp.GradScaler, clip_grad: float | None, step: int) -> StepResult:
    """Forward (under autocast) + backward + clip + step. Raises NonFiniteLossError before touching the weights."""
    optimizer.zero_grad(set_to_none=True)
    with precision.autocast():
        loss = compute_loss()
    value = float(loss.detach())
    if not math.isfinite(value):
        raise NonFiniteLossError(f"loss is {value} at step {step}: stopping (lower optim.lr, set optim.clip_grad, "
                                 "or check the data); the last checkpoint is intact")
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    max_norm = clip_grad if clip_grad is not None else float("inf")
    if hasattr(model, "clip_grad_norm_"):  # FSDP computes the norm over shards
        norm = model.clip_grad_norm_(max_norm)
    else:
        norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_norm)
    scaler.step(optimizer)
    scaler.update()
    return StepResult(value, float(norm))
