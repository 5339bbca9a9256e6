"""Patchify, reconstruction targets and the masked loss, exactly as the reference computes them.

OpenGVLab/VideoMAEv2 `engine_for_pretraining.py`: un-normalise the clip to [0, 1], cut it into tubelets
(t x p x p), normalise each tubelet per colour channel by its mean and (unbiased std + 1e-6), flatten with the
channel fastest: 'b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2 c)'. The loss is the per-token MSE averaged over
tokens hidden from the encoder *and* decoded (`cal_loss_mask` there; `enc_mask & dec_mask` here).
"""

from __future__ import annotations

import torch

from videomae.masks import mask_positions

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16 -> float32 for targets and loss (as the reference under autocast); float64 stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def unnormalize(clip: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised (B, 3, T, H, W) -> [0, 1] pixels."""
    mean = clip.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = clip.new_tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    return clip * std + mean


def patchify(pixels: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, N, t*p*p, C), tokens in (t, h, w) order, values in (t, p, p) order per channel."""
    b, c, t, h, w = pixels.shape
    x = pixels.reshape(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)  # (B,C,T',t,H',p,W',p)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, T', H', W', t, p, p, C)
    return x.reshape(b, (t // tubelet) * (h // patch) * (w // patch), tubelet * patch * patch, c)  # (B, N, tpp, C)


def unpatchify(tokens: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> torch.Tensor:
    """(B, N, t*p*p*C) with the channel fastest -> (B, C, T, H, W); the inverse of `patchify` + flatten."""
    b = tokens.shape[0]
    gt, gh, gw = grid
    x = tokens.reshape(b, gt, gh, gw, tubelet, patch, patch, -1)  # (B, T', H', W', t, p, p, C)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # (B, C, T', t, H', p, W', p)
    return x.reshape(b, x.shape[1], gt * tubelet, gh * patch, gw * patch)  # (B, C, T, H, W)


def tubelet_stats(clip: torch.Tensor, tubelet: int, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per tubelet and channel mean and (unbiased std + 1e-6) of the [0, 1] pixels: 2 x (B, N, 1, C)."""
    patches = patchify(unnormalize(clip), tubelet, patch)  # (B, N, tpp, C)
    return patches.mean(dim=-2, keepdim=True), patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6


def reconstruction_targets(clip: torch.Tensor, tubelet: int, patch: int, normalize: bool = True) -> torch.Tensor:
    """(B, 3, T, H, W) normalised clip -> targets (B, N, t*p*p*3), channel fastest."""
    with torch.no_grad():
        patches = patchify(unnormalize(at_least_float32(clip)), tubelet, patch)  # (B, N, tpp, C)
        if normalize:
            mean = patches.mean(dim=-2, keepdim=True)  # (B, N, 1, C)
            std = patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6  # (B, N, 1, C)
            patches = (patches - mean) / std
        return patches.flatten(2)  # (B, N, tpp*C)


def masked_loss(pred: torch.Tensor, targets: torch.Tensor, enc_mask: torch.Tensor, dec_mask: torch.Tensor,
                dec_idx: torch.Tensor | None = None, reduction: str = "mean") -> torch.Tensor:
    """MSE per decoded token, averaged over the decoded tokens that were hidden from the encoder: over the whole batch
    (reduction "mean", a scalar, the training loss) or over each clip's own (reduction "none", (B,): clips of
    different requests batched together, /v1/reconstruct).

    pred: (B, N_dec, P) rows in token order of `dec_mask`; targets: (B, N, P); `dec_idx` (B, N_dec), the positions of
    `dec_mask` when the caller has them already (`mask_positions`)."""
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', not {reduction!r}")
    if dec_idx is None:
        dec_idx = mask_positions(dec_mask, "decoded tokens (dec_mask True)")  # (B, N_dec)
    chosen = torch.take_along_dim(targets, dec_idx[..., None], dim=1)  # (B, N_dec, P)
    per_token = (at_least_float32(pred) - chosen).pow(2).mean(dim=-1)  # (B, N_dec)
    counted = torch.gather(enc_mask, 1, dec_idx).to(per_token.dtype)  # (B, N_dec): hidden and decoded
    if reduction == "none":
        return (per_token * counted).sum(dim=1) / counted.sum(dim=1).clamp_min(1.0)  # (B,)
    return (per_token * counted).sum() / counted.sum().clamp_min(1.0)


def unnormalize_patches(pred: torch.Tensor, clip: torch.Tensor, dec_mask: torch.Tensor, tubelet: int, patch: int
                        ) -> torch.Tensor:
    """Decoder predictions (B, N_dec, P) of per-tubelet normalised pixels back to [0, 1] pixel units,
    (B, N_dec, t*p*p, 3), with the mean and std of the original clip's tubelets at the decoded positions, as the
    reference's visualisation does (OpenGVLab/VideoMAEv2 `run_mae_vis.py`). Not clamped."""
    b, n_dec, _ = pred.shape
    mean, std = tubelet_stats(clip, tubelet, patch)  # (B, N, 1, C) each
    c = mean.shape[-1]
    patches = pred.reshape(b, n_dec, -1, c)  # (B, N_dec, tpp, C): targets are flattened channel-fastest
    return patches * std[dec_mask].reshape(b, n_dec, 1, c) + mean[dec_mask].reshape(b, n_dec, 1, c)
