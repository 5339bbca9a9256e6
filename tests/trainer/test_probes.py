"""Frozen-feature probes (trainer/evaluation.py) on toy problems whose answer is known, and trainer/evaluate.py's
report of the three on real shards."""

from __future__ import annotations

import json

import pytest
import torch
from trainer_testlib import recipe

import videomae
from trainer import evaluate
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


@pytest.mark.slow
def test_evaluate_reports_the_three_protocols_side_by_side(sample_shards, tmp_path):
    """trainer/evaluate.py mode probes on the session shards' 88 val clips (fit and scored on them: the wiring, not a
    result): k-NN, the linear and the attentive probe from one forward pass per clip, both probes per seed."""
    torch.manual_seed(0)
    videomae.create_model("nano").save(tmp_path / "nano")
    cfg = recipe("evaluate", "configs/evaluate/attentive_tiny.yaml", sample_shards, tmp_path, "probes", "mode=probes",
                 f"model.init_from={tmp_path / 'nano'}", "train_split=val", "eval.split=val", "linear_seeds=[0,1]",
                 "attentive.epochs=3", "linear_epochs=20")
    out = evaluate.main(cfg=cfg)
    assert out["train_clips"] == out["test_clips"] == 88 and out["classes"] >= 6
    for protocol in ("linear", "attentive"):
        seeds = out[f"{protocol}_seeds"]
        assert sorted(seeds) == ["0", "1"] and all(0 <= v <= 1 for v in seeds.values())
        assert out[protocol] == pytest.approx(sum(seeds.values()) / 2)
    assert 0 <= out["knn"] <= 1 and 0 < out["chance"] < 1
    assert json.loads((tmp_path / "probes" / "eval_probes.json").read_text()) == out
