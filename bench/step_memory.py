"""Peak tensor memory of one pre-training step, measured without computing it: fake tensors (shapes, no data) under
torch's own memory tracker (`torch.distributed._tools.mem_tracker.MemTracker`, a private tool of torch: it counts
the bytes of every live tensor storage, the host-side analogue of `torch.cuda.max_memory_allocated`).

One step = zero_grad(set_to_none) -> forward under autocast -> backward -> fused AdamW step, with the optimizer state
already allocated (a step after the first). Allocator caching, fragmentation and kernel workspaces are not counted.
The token positions are data, which fake tensors do not have: `mask_positions` is replaced by zeros of the right
count (the gathers then read token 0 everywhere: same shapes, same bytes). `check_against_real` shows on a small
preset that the fake measurement equals a real step's.
"""

from __future__ import annotations

import contextlib
from unittest import mock

import numpy as np
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.distributed._tools.mem_tracker import MemTracker

import videomae.model as model_module
from videomae import MaskingConfig, VideoMAEConfig, sample_masks


def _tracked_step(model, opt, clip, enc, dec, bf16: bool) -> int:
    tracker = MemTracker()
    tracker.track_external(model, opt)
    with tracker:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(clip.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = model(clip, enc, dec)
        loss.backward()
        opt.step()
    return int(tracker.get_tracker_snapshot("peak")[clip.device]["Total"])


def _with_optimizer_state(model) -> torch.optim.Optimizer:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # allocates exp_avg / exp_avg_sq, as after the first real step
    opt.zero_grad(set_to_none=True)
    return opt


def step_peak_bytes(cfg: VideoMAEConfig, masking: MaskingConfig, batch: int, bf16: bool) -> int:
    """Peak bytes of live tensors during one training step at `batch` clips (fake tensors: no compute)."""
    enc, dec = sample_masks(masking, cfg.grid, 1, 0)
    counts = {"visible": int((~enc).sum()), "decoded": int(dec.sum())}

    def positions(mask: torch.Tensor, what: str) -> torch.Tensor:
        return torch.zeros(mask.shape[0], counts[what.split()[0]], dtype=torch.long)  # (B, K)

    stubs = (mock.patch.object(model_module, "mask_positions", positions),
             # init draws by rejection (data-dependent); values do not matter for memory
             mock.patch.object(torch.nn.init, "trunc_normal_", lambda t, *a, **k: t))
    with FakeTensorMode(), contextlib.ExitStack() as stack:
        for s in stubs:
            stack.enter_context(s)
        model = model_module.VideoMAEPretrain(cfg).train()
        opt = _with_optimizer_state(model)
        clip = torch.empty(batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size)
        masks = torch.empty(batch, cfg.num_patches, dtype=torch.bool)
        return _tracked_step(model, opt, clip, masks, masks, bf16)


def real_step_peak_bytes(cfg: VideoMAEConfig, masking: MaskingConfig, batch: int, bf16: bool) -> int:
    """The same measurement on real tensors (computes the step)."""
    torch.manual_seed(0)
    model = model_module.VideoMAEPretrain(cfg).train()
    opt = _with_optimizer_state(model)
    clip = torch.randn(batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size)
    enc, dec = (torch.from_numpy(m) for m in sample_masks(masking, cfg.grid, batch, np.random.default_rng(0)))
    return _tracked_step(model, opt, clip, enc, dec, bf16)


def largest_batch(cfg: VideoMAEConfig, masking: MaskingConfig, bf16: bool, budget: int,
                  probes: tuple[int, int] = (16, 64), limit: int = 100_000) -> tuple[int, list[tuple[int, int]]]:
    """The largest batch whose step peak fits `budget` bytes. Memory grows with the batch almost on a line, so a few
    secant steps (the line through the two latest measurements) land next to the answer; bisection between the
    largest batch that fits and the smallest that does not then makes it exact. Returns n and every (batch, bytes)
    measured."""
    seen: dict[int, int] = {}

    def peak(b: int) -> int:
        if b not in seen:
            seen[b] = step_peak_bytes(cfg, masking, b, bf16)
        return seen[b]

    a, b = probes
    for _ in range(3):
        slope = (peak(b) - peak(a)) / (b - a)
        if slope <= 0:
            break
        n = max(1, min(limit, b + int((budget - peak(b)) // slope)))
        if peak(n) <= budget and (n == limit or peak(n + 1) > budget):
            return n, sorted(seen.items())
        if n in (a, b):
            break
        a, b = b, n
    lo = max((k for k, v in seen.items() if v <= budget), default=0)
    hi = min((k for k, v in seen.items() if v > budget and k > lo), default=None)
    while hi is None:  # nothing measured failed above lo: double until something does (or the limit)
        if lo >= limit:
            return lo, sorted(seen.items())
        step = min(limit, max(2 * lo, 1))
        lo, hi = (step, None) if peak(step) <= budget else (lo, step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if peak(mid) <= budget else (lo, mid)
    return lo, sorted(seen.items())


def check_against_real(preset: str = "tiny", batch: int = 2) -> dict:
    """Fake vs real peak of the same step on a small preset, both precisions: they should be equal."""
    cfg = VideoMAEConfig.from_preset(preset)
    out = {}
    for bf16 in (False, True):
        fake = step_peak_bytes(cfg, MaskingConfig(), batch, bf16)
        real = real_step_peak_bytes(cfg, MaskingConfig(), batch, bf16)
        out["bf16" if bf16 else "fp32"] = {"fake_bytes": fake, "real_bytes": real}
    return out
