"""Encoder and decoder masks, batched and seeded (no global RNG).

Convention (DESIGN.md): boolean arrays of shape (B, N), token order t-major, then h, then w.
- `enc_mask`: True = hidden from the encoder.
- `dec_mask`: True = the decoder gets a mask token there and predicts it.
Every generator takes a `numpy.random.Generator` or an int seed.

The kinds are declared once, in `ENCODER_MASKS` and `DECODER_MASKS` (name -> generator and what it needs of the
grid); the config's choices (`EncoderKind`, `DecoderKind`), the trainer's checks and the API's query schema are
derived from them. Adding a kind is adding its generator and one entry there.

The reference (OpenGVLab/VideoMAEv2 `dataset/masking_generator.py`) returns the decoder mask the other way round
(`decode_masked_pos`, True = *not* decoded, used through its negation); here each mask is made once, already
meaning what its name says. A decoder masking `ratio` is the share of tokens *dropped* from the decoder, as in the
paper's ablation (running cell 0.5 decodes half of each 2x2 cell).

The model does not select tokens with these boolean masks (`x[mask]` has a data-dependent shape, which breaks a
`torch.compile` graph); it gathers them at `mask_positions(mask)`, one (B, K) index tensor per mask and batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

Grid = tuple[int, int, int]
RNG = np.random.Generator | int | None


def as_rng(rng: RNG) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise ValueError("mask generators need an explicit numpy Generator or seed (no global RNG)")
    return np.random.default_rng(rng)


def _exact_choice(rng: np.random.Generator, batch: int, n: int, k: int) -> np.ndarray:
    """(batch, n) bool with exactly k True per row, uniformly placed."""
    order = np.argsort(rng.random((batch, n)), axis=1)  # a random permutation per row
    chosen = np.zeros((batch, n), dtype=bool)
    np.put_along_axis(chosen, order[:, :k], True, axis=1)
    return chosen


def tube_mask(grid: Grid, ratio: float, batch: int, rng: RNG) -> np.ndarray:
    """Encoder tube masking: one random spatial mask of int(ratio * h * w) hidden positions, repeated over time.

    Returns `enc_mask` (B, N), True = hidden from the encoder."""
    t, h, w = grid
    hidden_per_slice = int(ratio * h * w)
    spatial = _exact_choice(as_rng(rng), batch, h * w, hidden_per_slice)  # (B, h*w)
    return np.tile(spatial, (1, t))  # (B, t*h*w): t-major, the same spatial mask in every slice


def random_enc_mask(grid: Grid, ratio: float, batch: int, rng: RNG) -> np.ndarray:
    """Encoder random (non-tube) masking: int(ratio * N) hidden positions anywhere. True = hidden."""
    n = grid[0] * grid[1] * grid[2]
    return _exact_choice(as_rng(rng), batch, n, int(ratio * n))


def running_cell_mask(grid: Grid, ratio: float, batch: int, rng: RNG) -> np.ndarray:
    """Decoder running-cell masking. Returns `dec_mask` (B, N), True = decoded.

    Each 2x2 spatial cell holds a queue of 4 slots, int(4 * ratio) of them dropped; the queue's read pointer starts
    at a random offset per clip and advances one step per temporal slice (the reference advances it before the first
    slice too, which a random start makes equivalent). Slot k of the queue sits at cell position (k // 2, k % 2).
    """
    t, h, w = grid
    if h % 2 or w % 2:
        raise ValueError(f"running-cell masking needs an even spatial grid, got {h}x{w}")
    dropped = int(4 * ratio)
    if not 0 < dropped < 4:
        raise ValueError(f"running-cell ratio must drop 1, 2 or 3 of 4 cell positions, got ratio {ratio}")
    queue = np.arange(4) >= dropped  # slots [0, dropped) are dropped, the rest decoded
    start = as_rng(rng).integers(0, 4, size=batch)  # (B,)
    ptr = (start[:, None] + np.arange(1, t + 1)[None, :]) % 4  # (B, t): pointer per slice
    cell = queue[(np.arange(4)[None, None, :] + ptr[:, :, None]) % 4]  # (B, t, 4): decoded flags of one cell
    cell = cell.reshape(batch, t, 2, 2)  # (B, t, 2, 2)
    full = np.tile(cell, (1, 1, h // 2, w // 2))  # (B, t, h, w)
    return full.reshape(batch, t * h * w)  # (B, N)


def random_dec_mask(grid: Grid, ratio: float, batch: int, rng: RNG) -> np.ndarray:
    """Decoder random masking (ablation): N - int(ratio * N) decoded positions anywhere. True = decoded."""
    n = grid[0] * grid[1] * grid[2]
    return _exact_choice(as_rng(rng), batch, n, n - int(ratio * n))


def frame_dec_mask(grid: Grid, ratio: float, batch: int, rng: RNG) -> np.ndarray:
    """Decoder frame masking (ablation): whole temporal slices, t - int(ratio * t) of them decoded. True = decoded."""
    t, h, w = grid
    slices = _exact_choice(as_rng(rng), batch, t, t - int(ratio * t))  # (B, t)
    return np.repeat(slices, h * w, axis=1)  # (B, N)


# ---------------------------------------------------------------------------------------------- the kinds
@dataclass(frozen=True)
class MaskKind:
    # (grid, ratio, batch, rng) -> (B, N) bool; None: the decoder predicts every hidden token (dec_mask = enc_mask)
    make: Callable[[Grid, float, int, RNG], np.ndarray] | None
    # (grid, ratio) -> "config_key: problem" when this kind cannot mask that grid at that ratio, else None
    check: Callable[[Grid, float], str | None] = lambda grid, ratio: None


def _even_grid(grid: Grid, ratio: float) -> str | None:
    _, h, w = grid
    return f"decoder: running_cell needs an even spatial grid, model grid is {h}x{w}" if h % 2 or w % 2 else None


ENCODER_MASKS: dict[str, MaskKind] = {"tube": MaskKind(tube_mask), "random": MaskKind(random_enc_mask)}
DECODER_MASKS: dict[str, MaskKind] = {
    "none": MaskKind(None),  # VideoMAE V1
    "running_cell": MaskKind(running_cell_mask, _even_grid),  # VideoMAE V2
    "random": MaskKind(random_dec_mask),  # ablations
    "frame": MaskKind(frame_dec_mask),  # ratio < 1 always leaves a slice to decode
}
EncoderKind = Literal[tuple(ENCODER_MASKS)]
DecoderKind = Literal[tuple(DECODER_MASKS)]


class MaskingConfig(BaseModel):
    """Which masks to draw. `decoder="none"` is VideoMAE V1 (the decoder predicts every hidden token)."""

    model_config = ConfigDict(extra="forbid")

    encoder: EncoderKind = "tube"
    encoder_ratio: float = Field(0.9, gt=0.0, lt=1.0)
    decoder: DecoderKind = "running_cell"
    decoder_ratio: float = Field(0.5, ge=0.0, lt=1.0)

    def problems(self, grid: Grid) -> list[str]:
        """What keeps these masks from a model's token grid, each as "key: problem" (empty: none)."""
        found = [ENCODER_MASKS[self.encoder].check(grid, self.encoder_ratio),
                 DECODER_MASKS[self.decoder].check(grid, self.decoder_ratio)]
        return [p for p in found if p]


def sample_masks(cfg: MaskingConfig, grid: Grid, batch: int, rng: RNG) -> tuple[np.ndarray, np.ndarray]:
    """Draw (enc_mask, dec_mask), each (B, N) bool, from one generator (encoder first, then decoder)."""
    rng = as_rng(rng)
    enc = ENCODER_MASKS[cfg.encoder].make(grid, cfg.encoder_ratio, batch, rng)
    make_dec = DECODER_MASKS[cfg.decoder].make
    dec = enc.copy() if make_dec is None else make_dec(grid, cfg.decoder_ratio, batch, rng)
    return enc, dec


# A token set of 0 or 1 would make compiled graphs guard on the size (empty? broadcastable?), which they cannot do
# on a count read from data; at least 2 keeps every mask the generators above draw at the paper's sizes.
MIN_TOKENS = 2


@torch.library.custom_op("videomae::mask_positions", mutates_args=())
def mask_positions(mask: torch.Tensor, what: str) -> torch.Tensor:
    """(B, N) bool -> (B, K) int64: the positions where `mask` is True, ascending (token order) in each row.

    Every row must hold the same K >= 2 (each generator above draws exact counts); `what` names the True set in
    errors. A custom op so that `torch.compile` keeps one graph: inside it the count is read eagerly, outside it K is
    a symbolic size, and every tensor after the gather has a shape known from K alone (no boolean selection)."""
    counts = mask.sum(dim=1)  # (B,)
    if counts.numel() and bool((counts != counts[0]).any()):
        raise ValueError(f"every sample in a batch must have the same number of {what}; got {counts.tolist()}")
    k = int(counts[0]) if counts.numel() else MIN_TOKENS
    if k < MIN_TOKENS:
        raise ValueError(f"every sample needs at least {MIN_TOKENS} {what}; got {k}")
    return mask.nonzero()[:, 1].reshape(mask.shape[0], k)  # (B, K); nonzero is row-major: positions ascending


@mask_positions.register_fake
def _(mask: torch.Tensor, what: str) -> torch.Tensor:
    k = torch.library.get_ctx().new_dynamic_size(min=MIN_TOKENS)  # the count is data, known when the op runs
    return mask.new_empty((mask.shape[0], k), dtype=torch.long)
