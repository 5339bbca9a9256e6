"""Collectives over the Ray Train workers (torch.distributed; gloo on CPU, NCCL on GPU). Every rank must call each
function the same number of times in the same order; with one worker (or none initialised) they return at once."""

from __future__ import annotations

from typing import Any

import torch


def world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def sum_across_workers(values: list[float], device: torch.device) -> list[float]:
    import torch.distributed as dist

    if world() == 1:
        return values
    t = torch.tensor(values, device=device, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def mean_across_workers(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalar metrics over all workers."""
    if world() == 1:
        return values
    keys = sorted(values)
    summed = sum_across_workers([float(values[k]) for k in keys], device)
    return {k: v / world() for k, v in zip(keys, summed, strict=True)}


def any_worker(flag: bool, device: torch.device) -> bool:
    """True if `flag` is true on any worker."""
    return sum_across_workers([float(flag)], device)[0] > 0


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's (picklable) object, in rank order, on every rank."""
    import torch.distributed as dist

    if world() == 1:
        return [obj]
    out: list[Any] = [None] * world()
    dist.all_gather_object(out, obj)
    return out
