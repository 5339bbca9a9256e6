"""/v1/embed: sliding-window clip features and their pool over the whole video.

Windows come from `videomae.transforms.sliding_windows`, keeping those whose whole clip exists (api/preprocess.py:
planned from the container's count; when a read finds frames missing, the frames are counted once and the windows
beyond the real end are dropped; an upload without one full clip is a 422). Clips are decoded and transformed a
batch at a time, the next batch decoding while the model runs the current one, so one request holds at most two
batches of clips in memory however long the video is. Per-clip features are the model's `forward_pooled` (see
api/engine.py); the video feature is their mean (or max); `normalize` L2-normalises each clip feature and,
separately, the pooled one (pooling raw features first).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import torch
import torch.nn.functional as F

from api.engine import Model, ModelHost, operation
from api.errors import ApiError
from api.preprocess import load_clip, plan_windows, probe_upload, too_short
from api.schemas import ClipEmbedding, EmbedOptions, EmbedResponse
from videomae.video import FrameReader, clip_indices


@operation("embed")
def embed_batch(model: Model, clips: list[torch.Tensor]) -> list[torch.Tensor]:
    """The model thread's work: one pooled feature per clip (3, T, S, S) -> B x (C,)."""
    return list(model.forward_pooled(torch.stack(clips)).float())


def _decode_windows(host: ModelHost, reader: FrameReader, starts: list[int], clip_len: int, stride: int
                    ) -> list[torch.Tensor]:
    """The clips of `starts`, in order, up to the first that does not exist (the video ended before it)."""
    img, out = host.cfg.img_size, []
    for s in starts:
        clip = load_clip(reader, clip_indices(clip_len=clip_len, stride=stride, start=s), img, host.settings)
        if clip is None:
            break
        out.append(clip)
    return out


async def embed_video(host: ModelHost, path: Path, opts: EmbedOptions) -> EmbedResponse:
    cfg, settings = host.cfg, host.settings
    clip_len = opts.clip_len or cfg.num_frames
    if clip_len % cfg.tubelet_size:
        raise ApiError(422, "invalid_request", f"clip_len ({clip_len}) must be a multiple of the model's tubelet "
                                               f"size ({cfg.tubelet_size})")
    span = (clip_len - 1) * opts.frame_stride + 1
    window_stride = opts.window_stride or span

    info, reader = await host.offload(probe_upload, path, settings)
    starts = await host.offload(plan_windows, reader, info, clip_len, opts.frame_stride, window_stride,
                                settings.max_clips)

    chunk = host.settings.max_batch
    groups = [starts[i:i + chunk] for i in range(0, len(starts), chunk)]
    shape = (3, clip_len, cfg.img_size, cfg.img_size)
    feats: list[torch.Tensor] = []

    def decode(i: int) -> asyncio.Future:
        return asyncio.ensure_future(host.offload(_decode_windows, host, reader, groups[i], clip_len,
                                                  opts.frame_stride))

    pending: asyncio.Future | None = decode(0)
    try:
        for i in range(len(groups)):
            clips = await pending
            pending = None
            if len(clips) < len(groups[i]):  # the video ends before this window: the later ones do not exist either
                starts = starts[: i * chunk + len(clips)]
            elif i + 1 < len(groups):  # decode the next group while the model runs this one
                pending = decode(i + 1)
            if clips:
                feats.extend(await host.run("embed", clips, shape))
            if pending is None:
                break
    finally:
        if pending is not None:
            pending.cancel()
    if not feats:
        raise too_short(reader, clip_len, opts.frame_stride)

    per_clip = torch.stack(feats)  # (K, C)
    pooled = per_clip.mean(dim=0) if opts.pool == "mean" else per_clip.amax(dim=0)  # (C,)
    if opts.normalize:
        per_clip, pooled = F.normalize(per_clip, dim=-1), F.normalize(pooled, dim=-1)
    clips_out = []
    if opts.include_clips:
        for s, f in zip(starts, per_clip, strict=True):
            clips_out.append(ClipEmbedding(start_frame=s, end_frame=s + span - 1, embedding=f.tolist()))
    return EmbedResponse(
        embedding=pooled.tolist(), dim=int(pooled.numel()), pool=opts.pool, normalized=opts.normalize,
        feature=host.info.feature, num_frames=reader.num_frames, fps=reader.length.fps, clip_len=clip_len,
        frame_stride=opts.frame_stride, window_stride=window_stride, clips=clips_out,
        header_num_frames=info.num_frames, frames_counted=reader.length.counted, rotation=info.rotation,
        stream_index=info.stream_index,
    )
