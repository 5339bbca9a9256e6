"""Frozen-feature probes (trainer/evaluation.py) on toy problems whose answer is known."""

from __future__ import annotations

import torch

from trainer.evaluation import attentive_probe_accuracy, knn_accuracy, linear_probe_accuracy


def _keyed_tokens(n: int, seed: int, tokens: int = 16, dim: int = 8):
    """The class is the sign of channel 1 at the one token whose channel 0 is high (the "key"); channel 1 of every
    other token is loud noise. Mean pooling drowns the keyed token's sign; attention can find it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, tokens, dim, generator=g) * 0.3
    x[..., 1] = torch.randn(n, tokens, generator=g) * 2.0
    key = torch.randint(0, tokens, (n,), generator=g)
    y = torch.randint(0, 2, (n,), generator=g)
    rows = torch.arange(n)
    x[rows, key, 0] = 4.0
    x[rows, key, 1] = torch.where(y == 1, 3.0, -3.0)
    return x, y


def test_attentive_probe_learns_what_mean_pooling_cannot():
    a, ya = _keyed_tokens(512, 0)
    b, yb = _keyed_tokens(256, 1)
    attentive = attentive_probe_accuracy(a, ya, b, yb, 2, epochs=60, lr=3e-3, seed=0)
    linear = linear_probe_accuracy(a.mean(1), ya, b.mean(1), yb, 2, epochs=200, lr=1e-2, seed=0)
    assert attentive > 0.9, attentive
    assert linear < 0.75, linear  # the signal is 1 token in 16, under noise
    assert attentive > linear + 0.2


def test_linear_and_knn_on_separable_features():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 3
    ya, yb = torch.arange(200) % 4, torch.arange(80) % 4
    a = centres[ya] + torch.randn(200, 16, generator=g)
    b = centres[yb] + torch.randn(80, 16, generator=g)
    assert linear_probe_accuracy(a, ya, b, yb, 4, epochs=100, lr=1e-2) > 0.95
    assert knn_accuracy(a, ya, b, yb, k=10, temperature=0.07, num_classes=4) > 0.95
