"""/v1/embed: sliding-window clip features and their pool over the whole video.

Windows come from `videomae.transforms.sliding_windows` (at least one clip, even for a video shorter than a clip;
short clips repeat the last frame). Clips are decoded and transformed a batch at a time, the next batch decoding
while the model runs the current one, so one request holds at most two batches of clips in memory however long the
video is. Per-clip features are the model's `forward_pooled` (see api/engine.py); the video feature is their mean
(or max); `normalize` L2-normalises each clip feature and, separately, the pooled one (pooling raw features first).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import torch
import torch.nn.functional as F

from api.engine import Model, ModelHost, operation
from api.errors import ApiError
from api.preprocess import load_clip, probe_upload, window_indices
from api.schemas import ClipEmbedding, EmbedOptions, EmbedResponse
from videomae.transforms import sliding_windows
from videomae.video import VideoInfo


@operation("embed")
def embed_batch(model: Model, clips: list[torch.Tensor]) -> list[torch.Tensor]:
    """The model thread's work: one pooled feature per clip (3, T, S, S) -> B x (C,)."""
    return list(model.forward_pooled(torch.stack(clips)).float())


def _decode_windows(host: ModelHost, path: Path, info: VideoInfo, starts: list[int], clip_len: int, stride: int
                    ) -> list[torch.Tensor]:
    img = host.cfg.img_size
    return [load_clip(path, window_indices(info, clip_len, stride, s), img, host.settings) for s in starts]


async def embed_video(host: ModelHost, path: Path, opts: EmbedOptions) -> EmbedResponse:
    cfg, settings = host.cfg, host.settings
    clip_len = opts.clip_len or cfg.num_frames
    if clip_len % cfg.tubelet_size:
        raise ApiError(422, "invalid_request", f"clip_len ({clip_len}) must be a multiple of the model's tubelet "
                                               f"size ({cfg.tubelet_size})")
    span = (clip_len - 1) * opts.frame_stride + 1
    window_stride = opts.window_stride or span

    info = await host.offload(probe_upload, path, settings)
    starts = sliding_windows(info.num_frames, clip_len, opts.frame_stride, window_stride)
    if len(starts) > settings.max_clips:
        raise ApiError(422, "too_many_clips", f"{len(starts)} clips for {info.num_frames} frames; at most "
                                              f"{settings.max_clips}: raise window_stride")

    chunk = host.settings.max_batch
    groups = [starts[i:i + chunk] for i in range(0, len(starts), chunk)]
    shape = (3, clip_len, cfg.img_size, cfg.img_size)
    feats: list[torch.Tensor] = []
    pending = asyncio.ensure_future(host.offload(_decode_windows, host, path, info, groups[0], clip_len,
                                                 opts.frame_stride))
    try:
        for i in range(len(groups)):
            clips = await pending
            if i + 1 < len(groups):  # decode the next group while the model runs this one
                pending = asyncio.ensure_future(host.offload(_decode_windows, host, path, info, groups[i + 1],
                                                             clip_len, opts.frame_stride))
            feats.extend(await host.run("embed", clips, shape))
    finally:
        pending.cancel()

    per_clip = torch.stack(feats)  # (K, C)
    pooled = per_clip.mean(dim=0) if opts.pool == "mean" else per_clip.amax(dim=0)  # (C,)
    if opts.normalize:
        per_clip, pooled = F.normalize(per_clip, dim=-1), F.normalize(pooled, dim=-1)
    clips_out = []
    if opts.include_clips:
        for s, f in zip(starts, per_clip, strict=True):
            end = int(window_indices(info, clip_len, opts.frame_stride, s)[-1])
            clips_out.append(ClipEmbedding(start_frame=s, end_frame=end, embedding=f.tolist()))
    return EmbedResponse(
        embedding=pooled.tolist(), dim=int(pooled.numel()), pool=opts.pool, normalized=opts.normalize,
        feature=host.info.feature, num_frames=info.num_frames, fps=info.fps, clip_len=clip_len,
        frame_stride=opts.frame_stride, window_stride=window_stride, clips=clips_out,
    )
