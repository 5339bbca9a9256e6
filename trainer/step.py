"""One optimizer step, one precision path: autocast(enabled=...) forward and backward of each micro-batch, clip, step;
stop on a non-finite loss (the reference exits there too: `engine_for_pretraining.py`, "Loss is {}, stopping
training") or gradient norm.

Gradient accumulation (`optim.accum_steps` k): each micro-batch's loss is divided by k before its backward, so the
summed gradients are those of the mean loss over the k micro-batches, which equals the loss of one batch k times larger
when each micro-batch's loss is a mean over the same number of terms (as the gradient-accumulation PR of the
reference, MCG-NJU/VideoMAE#54, divides by `update_freq`). The micro-steps before the last run inside `skip_sync`
(DDP's `no_sync`, FSDP2's `set_requires_gradient_sync(False)`): the gradients are averaged over workers once per
optimizer step, by the last backward.

The stop is agreed by all workers at the same step, before any of them updates its weights: the loss check takes the
verdict of every worker (one scalar all-reduce), and the gradient norm is the same on every worker (DDP and FSDP
average the gradients first). Under bf16 autocast the weights, gradients and optimizer state stay fp32; bf16 needs no
loss scaling, so the GradScaler stays, disabled, and an fp16 path would only flip a flag.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from trainer.collectives import any_worker

ADVICE = "Lower optim.lr, set optim.clip_grad, try scaling.precision=fp32, or check the data"


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


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               micro_losses: Sequence[Callable[[], torch.Tensor]], precision: Precision,
               scaler: torch.amp.GradScaler, clip_grad: float | None, step: int,
               skip_sync: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> StepResult:
    """Forward (under autocast) + backward of every micro-batch + clip + step; `step` counts from 1, as the logs do.
    The reported loss is the mean of the micro-batches' losses. Raises NonFiniteLossError on every worker before any
    weight changes."""
    optimizer.zero_grad(set_to_none=True)
    k = len(micro_losses)
    values = []
    for i, compute_loss in enumerate(micro_losses):
        with contextlib.nullcontext() if i == k - 1 else skip_sync():
            with precision.autocast():
                loss = compute_loss()
            values.append(loss.detach().float())
            scaler.scale(loss / k if k > 1 else loss).backward()
    value = float(torch.stack(values).mean())  # one device sync per optimizer step
    if any_worker(not math.isfinite(value), values[0].device):
        here = math.isfinite(value)
        where = f"loss is non-finite on another worker (here {value})" if here else f"loss is {value}"
        raise NonFiniteLossError(f"{where} at step {step}: stopping. {ADVICE}")
    scaler.unscale_(optimizer)
    params = [p for p in model.parameters() if p.grad is not None]
    # The norm over all gradients of the model (FSDP's are sharded DTensors: the norm is all-reduced), computed once;
    # the gradients are rescaled only when clipping is on.
    total = torch.nn.utils.get_total_norm([p.grad for p in params])
    if clip_grad is not None:
        torch.nn.utils.clip_grads_with_norm_(params, clip_grad, total)
    norm = float(total.full_tensor() if hasattr(total, "full_tensor") else total)
    if not math.isfinite(norm):
        raise NonFiniteLossError(f"gradient norm is {norm} at step {step} (loss {value}): stopping. {ADVICE}")
    scaler.step(optimizer)
    scaler.update()
    return StepResult(value, norm)
