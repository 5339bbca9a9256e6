"""Targets and loss against a straightforward loop implementation written here (no reshapes shared with ours).

Reference (OpenGVLab/VideoMAEv2 `engine_for_pretraining.py`): un-normalise to [0, 1]; per tubelet and colour channel
subtract the mean and divide by (unbiased std + 1e-6); flatten a token's values with the channel fastest
('(p0 p1 p2 c)'); MSE per token averaged over tokens hidden from the encoder and decoded.
"""

from __future__ import annotations

import math

import torch

from videomae.targets import IMAGENET_MEAN, IMAGENET_STD, masked_loss, patchify, reconstruction_targets, unpatchify

T_, P_ = 2, 4  # tubelet, patch
B, T, H, W = 2, 4, 8, 12
GRID = (T // T_, H // P_, W // P_)


def loop_target(clip: torch.Tensor, b: int, ti: int, hi: int, wi: int) -> list[float]:
    """One token's target, by hand: pixel loops in (dt, dy, dx, channel) order, channel fastest."""
    raw = {}
    for c in range(3):
        vals = []
        for dt in range(T_):
            for dy in range(P_):
                for dx in range(P_):
                    v = float(clip[b, c, ti * T_ + dt, hi * P_ + dy, wi * P_ + dx])
                    vals.append(v * IMAGENET_STD[c] + IMAGENET_MEAN[c])
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))  # unbiased
        raw[c] = [(v - mean) / (std + 1e-6) for v in vals]
    return [raw[c][k] for k in range(T_ * P_ * P_) for c in range(3)]


def test_targets_match_loops():
    clip = torch.randn(B, 3, T, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = reconstruction_targets(clip, T_, P_)  # (B, N, P)
    gt, gh, gw = GRID
    assert ours.shape == (B, gt * gh * gw, 3 * T_ * P_ * P_)
    for b in range(B):
        for ti in range(gt):
            for hi in range(gh):
                for wi in range(gw):
                    token = (ti * gh + hi) * gw + wi  # t-major, then h, then w
                    expect = torch.tensor(loop_target(clip, b, ti, hi, wi), dtype=torch.float64)
                    torch.testing.assert_close(ours[b, token], expect, rtol=1e-10, atol=1e-10)


def test_unnormalised_targets_and_unpatchify_roundtrip():
    clip = torch.randn(B, 3, T, H, W, generator=torch.Generator().manual_seed(1))
    flat = reconstruction_targets(clip, T_, P_, normalize=False)  # (B, N, P) [0, 1] pixels, channel fastest
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(unpatchify(flat, GRID, T_, P_), clip * std + mean)
    # channel fastest: value k of a token is channel k % 3
    assert torch.equal(flat[0, 0, :3], (clip * std + mean)[0, :, 0, 0, 0])
    assert patchify(clip, T_, P_).shape == (B, GRID[0] * GRID[1] * GRID[2], T_ * P_ * P_, 3)


def test_loss_counts_only_hidden_and_decoded_tokens():
    n, p = 6, 5
    gen = torch.Generator().manual_seed(2)
    targets = torch.randn(1, n, p, generator=gen, dtype=torch.float64)
    enc = torch.tensor([[True, True, False, False, True, False]])  # hidden from the encoder
    dec = torch.tensor([[True, False, True, False, True, True]])  # decoded: tokens 0, 2, 4, 5
    pred = torch.randn(1, 4, p, generator=gen, dtype=torch.float64)  # rows for tokens 0, 2, 4, 5
    # Counted: 0 and 4 (hidden and decoded); 2 and 5 are decoded but were visible; 1 is hidden but not decoded.
    expect = (((pred[0, 0] - targets[0, 0]) ** 2).mean() + ((pred[0, 2] - targets[0, 4]) ** 2).mean()) / 2
    torch.testing.assert_close(masked_loss(pred, targets, enc, dec), expect)
    # Changing the prediction of an uncounted token leaves the loss alone; a counted one moves it.
    moved = pred.clone()
    moved[0, 1] += 10
    moved[0, 3] -= 10
    torch.testing.assert_close(masked_loss(moved, targets, enc, dec), expect)
    moved[0, 2] += 1
    assert not torch.isclose(masked_loss(moved, targets, enc, dec), expect)


def test_per_clip_loss_and_unnormalised_predictions():
    """`masked_loss(reduction="none")` is each clip's loss alone; `unnormalize_patches` inverts the per-tubelet
    normalisation of the targets (a perfect prediction comes back as the clip's own pixels)."""
    from videomae.targets import unnormalize, unnormalize_patches

    gen = torch.Generator().manual_seed(3)
    clip = torch.randn(B, 3, T, H, W, generator=gen, dtype=torch.float64)
    n = GRID[0] * GRID[1] * GRID[2]
    enc = torch.zeros(B, n, dtype=torch.bool)
    enc[:, ::2] = True
    dec = enc.clone()
    dec[:, 1] = True  # decoded but visible: predicted, not counted
    targets = reconstruction_targets(clip, T_, P_)  # (B, N, P)
    pred = torch.randn(B, int(dec[0].sum()), 3 * T_ * P_ * P_, generator=gen, dtype=torch.float64)
    enc[1, 0] = False  # clip 1 counts one token less: a batch mean would weigh it less than its own loss
    each = masked_loss(pred, targets, enc, dec, reduction="none")
    assert each.shape == (B,)
    for b in range(B):
        torch.testing.assert_close(each[b], masked_loss(pred[b:b + 1], targets[b:b + 1], enc[b:b + 1], dec[b:b + 1]))
    assert not torch.isclose(each.mean(), masked_loss(pred, targets, enc, dec))
    perfect = targets[dec].reshape(B, -1, targets.shape[-1])  # (B, N_dec, P)
    pixels = patchify(unnormalize(clip), T_, P_)  # (B, N, tpp, 3)
    torch.testing.assert_close(unnormalize_patches(perfect, clip, dec, T_, P_),
                               pixels[dec].reshape(B, -1, T_ * P_ * P_, 3))
