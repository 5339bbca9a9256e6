"""/v1/reconstruct: mask one clip as in pre-training, decode it, and draw what the model filled in.

Masks come from `videomae.sample_masks` with the request's seed (same seed, same masks); the loss is the
pre-training loss of each clip, from the model itself (`model(clip, enc, dec, reduction="none")`: requests share
batches).
The decoder predicts normalised cubes; `videomae.targets.unnormalize_patches` recovers pixels with the *original*
cube's per-channel mean and std, as the reference's visualisation does (OpenGVLab/VideoMAEv2 `run_mae_vis.py`).

Image layout (PNG, no gutters): 5 rows x T columns of S x S tiles, T = clip frames, S = the model's img_size.
- row 0: the clip as the model sees it (after the evaluation transform);
- row 1: the masked input: cubes hidden from the encoder painted mid-grey;
- row 2: the reconstruction: visible cubes from the input, hidden-and-decoded cubes from the decoder de-normalised
  with the ORIGINAL cube's mean and std (so they look like the clip whatever the model predicts), hidden cubes the
  decoder did not predict (decoder masking) mid-grey;
- row 3: the prediction alone, as z-scores around mid-grey (no statistics of the clip: a model that predicts nothing
  is flat grey there);
- row 4: the squared error against the normalised target (black = exact, white >= 2).
Rows 3 and 4 are videomae/pictures.py's `prediction` and `error` views. With `format=frames` the first three rows'
tiles come as one PNG per frame, left to right (S x 3S), for a client that plays the clip (the page at `/`): frame t
of every row in one image keeps the three in step.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from api.engine import Model, ModelHost, operation
from api.errors import ApiError
from api.preprocess import clip_at, probe_upload
from api.schemas import ReconstructOptions, ReconstructResponse
from videomae.masks import MIN_TOKENS, MaskingConfig, sample_masks
from videomae.pictures import prediction_panels
from videomae.targets import patchify, unnormalize, unnormalize_patches, unpatchify
from videomae.transforms import to_uint8_frames

GREY = 0.5
MAX_PSNR_DB = 100.0  # a perfect reconstruction would be +inf, which JSON cannot carry
LAYOUT = ("rows: original, masked input, reconstruction (hidden cubes with the original's mean and std), prediction "
          "alone (z-scores around grey), error; one column per frame; tiles of img_size x img_size")


@dataclass(frozen=True)
class MaskedClip:
    """One reconstruction item: a normalised clip (3, T, S, S) and its masks (N,) as the library defines them."""

    clip: torch.Tensor
    enc_mask: np.ndarray  # True = hidden from the encoder
    dec_mask: np.ndarray  # True = decoded


@dataclass(frozen=True)
class Reconstruction:
    loss: float
    pred: torch.Tensor  # (N_dec, P), rows in token order of dec_mask


@dataclass(frozen=True)
class Picture:
    png: bytes  # the grid (empty when only frames were asked for)
    psnr: float
    frames: list[bytes]  # one PNG per frame, its three tiles left to right (empty unless asked for)


@operation("reconstruct")
def reconstruct_batch(model: Model, items: list[MaskedClip]) -> list[Reconstruction]:
    """The model thread's work: decode every item; each gets its own loss (the batch loss would mix requests)."""
    clips = torch.stack([i.clip for i in items])  # (B, 3, T, S, S)
    enc = torch.from_numpy(np.stack([i.enc_mask for i in items]))  # (B, N)
    dec = torch.from_numpy(np.stack([i.dec_mask for i in items]))  # (B, N)
    losses, pred = model(clips, enc, dec, reduction="none")  # (B,), (B, N_dec, P)
    return [Reconstruction(float(loss), p.float()) for loss, p in zip(losses, pred, strict=True)]


def draw_masks(cfg: ReconstructOptions, grid: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(enc_mask, dec_mask), each (N,) bool, from the request's seed. Bad combinations -> 422."""
    try:
        masking = MaskingConfig(encoder=cfg.mask_type, encoder_ratio=cfg.mask_ratio, decoder=cfg.decoder_mask,
                                decoder_ratio=cfg.decoder_mask_ratio)
        enc, dec = sample_masks(masking, grid, 1, cfg.seed)
    except ValueError as e:
        raise ApiError(422, "invalid_request", f"masking: {e}") from None
    if not (enc & dec).any():
        raise ApiError(422, "invalid_request", "no cube is both hidden and decoded: raise mask_ratio (or lower "
                                               "decoder_mask_ratio)")
    # The model needs at least MIN_TOKENS visible and decoded cubes (videomae.masks: a compiled graph cannot guard a
    # count read from data against 0 or 1).
    if int((~enc).sum()) < MIN_TOKENS:
        raise ApiError(422, "invalid_request", f"fewer than {MIN_TOKENS} cubes stay visible: lower mask_ratio")
    if int(dec.sum()) < MIN_TOKENS:
        raise ApiError(422, "invalid_request", f"fewer than {MIN_TOKENS} cubes are decoded: lower decoder_mask_ratio")
    return enc[0], dec[0]


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def render(item: MaskedClip, rec: Reconstruction, tubelet: int, patch: int, fmt: str = "png") -> Picture:
    """The PSNR over hidden-and-decoded cubes, and the 5-row PNG (`fmt` png, json) or one PNG per frame (frames)."""
    clip = item.clip[None].float()  # (1, 3, T, S, S)
    _, _, t, h, w = clip.shape
    grid = (t // tubelet, h // patch, w // patch)
    enc = torch.from_numpy(item.enc_mask)  # (N,) True = hidden
    dec = torch.from_numpy(item.dec_mask)  # (N,) True = decoded
    original = patchify(unnormalize(clip), tubelet, patch)[0]  # (N, tpp, 3) in [0, 1]
    predicted = unnormalize_patches(rec.pred[None], clip, dec[None], tubelet, patch)[0].clamp(0, 1)  # (N_dec, tpp, 3)

    masked = original.clone()
    masked[enc] = GREY
    recon = masked.clone()
    scored = enc & dec  # (N,)
    recon[dec] = torch.where(scored[dec, None, None], predicted, recon[dec])

    err = (recon[scored] - original[scored]).pow(2).mean().item()
    psnr = MAX_PSNR_DB if err <= 0 else min(MAX_PSNR_DB, 10 * math.log10(1.0 / err))

    def frames(tokens: torch.Tensor) -> np.ndarray:  # (N, tpp, 3) in [0, 1] -> (T, S, S, 3) uint8
        pixels = unpatchify(tokens.flatten(1)[None], grid, tubelet, patch)[0]  # (3, T, S, S)
        return pixels.clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()

    rows = [to_uint8_frames(item.clip), frames(masked), frames(recon)]  # 3 x (T, S, S, 3)
    if fmt == "frames":
        return Picture(b"", psnr, [_png(np.concatenate([r[i] for r in rows], axis=1))  # (S, 3S, 3)
                                   for i in range(len(rows[0]))])
    # The grid adds the two rows that carry no statistics of the hidden pixels (videomae/pictures.py).
    views = prediction_panels(item.clip, enc, dec, rec.pred, tubelet, patch)
    rows += [(views[name] * 255).round().astype(np.uint8) for name in ("prediction", "error")]
    image = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)  # (5S, T*S, 3)
    return Picture(_png(image), psnr, [])


async def reconstruct_video(host: ModelHost, path: Path, opts: ReconstructOptions) -> tuple[ReconstructResponse, bytes]:
    cfg, settings = host.cfg, host.settings
    info, reader = await host.offload(probe_upload, path, settings)
    indices, clip = await host.offload(clip_at, reader, opts.start, cfg.num_frames, opts.frame_stride, cfg.img_size,
                                       settings)  # (3, T, S, S)
    grid = cfg.grid
    enc, dec = draw_masks(opts, grid)
    item = MaskedClip(clip, enc, dec)
    (rec,) = await host.run("reconstruct", [item], (tuple(clip.shape), int((~enc).sum()), int(dec.sum())))
    picture = await host.offload(render, item, rec, cfg.tubelet_size, cfg.patch_size, opts.format)
    body = ReconstructResponse(
        loss=rec.loss, psnr=picture.psnr, start_frame=opts.start, frame_indices=[int(i) for i in indices],
        grid=list(grid), num_tokens=int(enc.size), num_hidden=int(enc.sum()), num_decoded=int(dec.sum()),
        num_scored=int((enc & dec).sum()), layout=LAYOUT,
        image_png_base64=base64.b64encode(picture.png).decode("ascii") if opts.format == "json" else "",
        fps=info.fps / opts.frame_stride if info.fps > 0 else None,
        frames_png_base64=[base64.b64encode(f).decode("ascii") for f in picture.frames],
    )
    return body, picture.png
