"""Mask properties over many seeds (docs/architecture.md "Masks": enc True = hidden from the encoder, dec True =
decoded).

Running-cell masks are also checked against a re-statement of the reference's generator (OpenGVLab/VideoMAEv2
`dataset/masking_generator.py`: a `Cell` queue of ones (= not decoded) then zeros, read from a pointer that
`run_cell` advances before every slice): ours must draw exactly the reference's set of patterns, negated.
"""

from __future__ import annotations

import numpy as np
import pytest

from videomae.masks import (
    MaskingConfig,
    frame_dec_mask,
    random_dec_mask,
    random_enc_mask,
    running_cell_mask,
    sample_masks,
    tube_mask,
)

SEEDS = range(50)
GRID = (8, 6, 8)  # (T/t, H/p, W/p): uneven sides on purpose


@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.9])
def test_tube_mask_same_spatial_mask_exact_count(ratio):
    t, h, w = GRID
    for seed in SEEDS:
        m = tube_mask(GRID, ratio, 4, seed).reshape(4, t, h, w)
        assert m.dtype == bool
        assert (m == m[:, :1]).all()  # the same spatial mask in every temporal slice
        assert (m.sum(axis=(2, 3)) == int(ratio * h * w)).all()  # exact hidden count in every slice


def reference_running_cell_patterns(grid, ratio) -> set[bytes]:
    """The reference's `all_mask_maps`, negated to mean decoded: one pattern per start pointer."""
    t, h, w = grid
    num_masks = int(4 * ratio)
    queue = np.hstack([np.ones(num_masks), np.zeros(4 - num_masks)])  # 1 = not decoded
    patterns = set()
    for ptr in range(4):
        slices = []
        for _ in range(t):
            ptr += 1  # run_cell() before get_cell()
            cell = queue[(np.arange(4) + ptr) % 4].reshape(2, 2)
            slices.append(np.tile(cell, [h // 2, w // 2]).flatten())
        patterns.add((np.stack(slices).reshape(-1) == 0).tobytes())
    return patterns


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_running_cell_exact_share_and_shift(ratio):
    t, h, w = GRID
    keep = 4 - int(4 * ratio)
    seen = set()
    for seed in SEEDS:
        m = running_cell_mask(GRID, ratio, 3, seed)
        cells = m.reshape(3, t, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5)  # (B, t, h/2, w/2, 2, 2)
        assert (cells.sum(axis=(-2, -1)) == keep).all()  # exact share of every 2x2 cell in every slice
        assert (cells == cells[:, :, :1, :1]).all()  # every cell of a slice has the same pattern
        flat = cells[:, :, 0, 0].reshape(3, t, 4)  # (B, t, 4) in cell order (0,0), (0,1), (1,0), (1,1)
        # One step per slice: slot k of slice s+1 holds what slot k+1 held in slice s.
        assert (flat[:, 1:] == np.roll(flat[:, :-1], -1, axis=-1)).all()
        seen.update(row.tobytes() for row in m)
    assert seen == reference_running_cell_patterns(GRID, ratio)  # all four start pointers occur, nothing else


def test_running_cell_refuses_odd_grid_and_bad_ratio():
    with pytest.raises(ValueError, match="even spatial grid"):
        running_cell_mask((2, 3, 4), 0.5, 1, 0)
    with pytest.raises(ValueError, match="ratio"):
        running_cell_mask(GRID, 0.1, 1, 0)


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_random_and_frame_decoder_masks_exact_counts(ratio):
    t, h, w = GRID
    n = t * h * w
    for seed in SEEDS:
        assert (random_dec_mask(GRID, ratio, 4, seed).sum(axis=1) == n - int(ratio * n)).all()
        assert (random_enc_mask(GRID, ratio, 4, seed).sum(axis=1) == int(ratio * n)).all()
        f = frame_dec_mask(GRID, ratio, 4, seed).reshape(4, t, h * w)
        assert (f.all(axis=2) | ~f.any(axis=2)).all()  # whole slices
        assert (f.all(axis=2).sum(axis=1) == t - int(ratio * t)).all()


@pytest.mark.parametrize("decoder", ["none", "running_cell", "random", "frame"])
def test_sample_masks_seeded_repeatable_and_no_global_rng(decoder):
    cfg = MaskingConfig(decoder=decoder)
    np.random.seed(123)
    global_state = np.random.get_state()
    first = sample_masks(cfg, GRID, 4, 7)
    again = sample_masks(cfg, GRID, 4, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    others = [sample_masks(cfg, GRID, 4, s) for s in range(8, 20)]
    assert all(not np.array_equal(first[0], o[0]) for o in others)  # a different seed draws a different mask
    if decoder in ("random", "frame"):
        assert any(not np.array_equal(first[1], o[1]) for o in others)
    after = np.random.get_state()
    assert after[0] == global_state[0] and np.array_equal(after[1], global_state[1]) and after[2:] == global_state[2:]
    enc, dec = first
    assert enc.shape == dec.shape == (4, np.prod(GRID)) and enc.dtype == dec.dtype == bool
    if decoder == "none":
        assert np.array_equal(enc, dec)  # V1: the decoder predicts exactly the hidden tokens


def test_no_seed_is_refused():
    with pytest.raises(ValueError, match="explicit"):
        tube_mask(GRID, 0.9, 1, None)


def test_masking_config_errors_name_the_key():
    with pytest.raises(ValueError, match="encoder_ratio"):
        MaskingConfig(encoder_ratio=1.5)
    with pytest.raises(ValueError, match="decoder"):
        MaskingConfig(decoder="checkerboard")
    with pytest.raises(ValueError, match="decodr_ratio"):
        MaskingConfig(decodr_ratio=0.5)


def test_kinds_are_declared_once_and_derived_elsewhere():
    """The config, the trainer's checks and the API's query schema all take their mask kinds from the declaration."""
    from api.schemas import ReconstructOptions
    from videomae.masks import DECODER_MASKS, ENCODER_MASKS

    schema = ReconstructOptions.model_json_schema()["properties"]
    assert schema["mask_type"]["enum"] == list(ENCODER_MASKS)
    assert schema["decoder_mask"]["enum"] == list(DECODER_MASKS)
    for encoder in ENCODER_MASKS:
        for decoder in DECODER_MASKS:
            cfg = MaskingConfig(encoder=encoder, decoder=decoder)
            assert cfg.problems(GRID) == []
            enc, dec = sample_masks(cfg, GRID, 2, 0)
            assert enc.shape == dec.shape == (2, np.prod(GRID))
    assert MaskingConfig(decoder="running_cell").problems((8, 5, 8)) == [
        "decoder: running_cell needs an even spatial grid, model grid is 5x8"]
