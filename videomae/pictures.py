"""What a pre-training model fills in, as pixels a person can judge honestly.

The decoder predicts each hidden cube's pixels normalised by that cube's own mean and std (the targets,
videomae/targets.py). The reference's visualisation (OpenGVLab/VideoMAEv2 `run_mae_vis.py`) de-normalises them with
the *original* cube's mean and std, so its "reconstruction" shows every hidden cube's true average colour and
contrast whatever the model predicted: a model that predicts nothing (all zeros) still looks like a blurry copy of
the clip. `panels` therefore returns, beside that reconstruction, two views that carry no information from the hidden
pixels:
- `prediction`: the prediction alone, drawn as z-scores around mid-grey (0.5 + 0.2 z, per channel); a model that
  predicts nothing gives flat grey, one that predicts the cube's structure shows its edges;
- `error`: the squared error against the target per pixel (what the loss counts), black = exact, white >= 2.

Tokens are in t-major order, masks as the library defines them (`enc_mask` True = hidden, `dec_mask` True =
decoded; docs/architecture.md "Masks").
"""

from __future__ import annotations

import numpy as np
import torch

from videomae.targets import patchify, reconstruction_targets, unnormalize, unnormalize_patches, unpatchify

GREY = 0.5
LEGEND = {
    "original": "the clip as the model sees it",
    "masked": "the encoder's input: hidden cubes mid-grey",
    "reconstruction": "hidden cubes: the prediction de-normalised with the ORIGINAL cube's mean and std (as the "
                      "reference's visualisation: true colours come from the clip, not the model)",
    "prediction": "hidden cubes: the prediction alone, z-scores around grey (no statistics of the clip); flat grey = "
                  "the model predicts nothing",
    "error": "hidden cubes: squared error against the normalised target (black = exact, white >= 2)",
}
ROWS = tuple(LEGEND)


def _frames(tokens: torch.Tensor, grid: tuple[int, int, int], tubelet: int, patch: int) -> np.ndarray:
    """(N, tpp, 3) values in [0, 1] -> (T, H, W, 3) float in [0, 1]."""
    pixels = unpatchify(tokens.flatten(1)[None], grid, tubelet, patch)[0]  # (3, T, H, W)
    return pixels.clamp(0, 1).permute(1, 2, 3, 0).numpy()


@torch.no_grad()
def panels(model: torch.nn.Module, clip: torch.Tensor, enc_mask: torch.Tensor, dec_mask: torch.Tensor,
           pred: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """One clip (3, T, H, W), normalised, and its masks (N,) -> {row name: (T, H, W, 3) float in [0, 1]} for the rows
    of `ROWS`, plus "loss" (the pre-training loss of this clip). `pred` (N_dec, P): the decoder's output when the
    caller has it already; else the model runs once."""
    cfg = model.cfg
    if pred is None:
        device = next(model.parameters()).device
        x = clip[None].float().to(device)
        pred = model(x, enc_mask[None].to(device), dec_mask[None].to(device))[1][0]  # (N_dec, P)
    return prediction_panels(clip, enc_mask, dec_mask, pred, cfg.tubelet_size, cfg.patch_size)


@torch.no_grad()
def prediction_panels(clip: torch.Tensor, enc_mask: torch.Tensor, dec_mask: torch.Tensor, pred: torch.Tensor,
                      t: int, p: int) -> dict[str, np.ndarray]:
    """`panels` from the decoder's output `pred` (N_dec, P) already at hand, for tubelet `t` and patch `p` (the API's
    reconstruction has it from its batch)."""
    x = clip[None].float().cpu()  # (1, 3, T, H, W), on the CPU: pictures are small
    _, _, nt, h, w = x.shape
    grid = (nt // t, h // p, w // p)
    enc_mask, dec_mask = enc_mask.cpu(), dec_mask.cpu()
    dec = dec_mask[None]  # (1, N)
    pred = pred.float().cpu()
    original = patchify(unnormalize(x), t, p)[0]  # (N, tpp, 3) in [0, 1]
    scored = enc_mask & dec_mask  # (N,) hidden and decoded: what the loss counts
    on_dec = scored[dec_mask]  # (N_dec,) which predicted rows are scored

    masked = original.clone()
    masked[enc_mask] = GREY
    recon = masked.clone()
    filled = unnormalize_patches(pred[None], x, dec, t, p)[0].clamp(0, 1)  # (N_dec, tpp, 3)
    recon[scored] = filled[on_dec]

    c = original.shape[-1]
    z = pred.reshape(pred.shape[0], -1, c)  # (N_dec, tpp, 3): targets are flattened channel-fastest
    alone = masked.clone()
    alone[scored] = (GREY + 0.2 * z[on_dec]).clamp(0, 1)

    target = reconstruction_targets(x, t, p)[0].reshape(original.shape[0], -1, c)  # (N, tpp, 3)
    err = torch.zeros_like(original)
    err[scored] = ((z[on_dec] - target[scored]) ** 2).mean(-1, keepdim=True).expand(-1, -1, c) / 2
    loss = float(((z[on_dec] - target[scored]) ** 2).mean()) if scored.any() else float("nan")
    return {"original": _frames(original, grid, t, p), "masked": _frames(masked, grid, t, p),
            "reconstruction": _frames(recon, grid, t, p), "prediction": _frames(alone, grid, t, p),
            "error": _frames(err, grid, t, p), "loss": loss}


def grid_image(rows: list[np.ndarray], every: int = 1, gap: int = 2) -> np.ndarray:
    """Rows of (T, H, W, 3) float frames -> one uint8 image, frame `every`-th across, rows down, white gaps."""
    picked = [r[::every] for r in rows]
    h, w = picked[0].shape[1:3]
    cols = max(len(r) for r in picked)
    out = np.ones((len(picked) * (h + gap) - gap, cols * (w + gap) - gap, 3), np.float32)
    for i, r in enumerate(picked):
        for j, f in enumerate(r):
            out[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = f
    return (out * 255).round().astype(np.uint8)
