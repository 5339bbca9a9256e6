"""Feature extraction's config (configs/extract/*.yaml): the input, the output, the model, the windows and the Ray
resources; validated on the driver, an error naming the key."""

from __future__ import annotations

import posixpath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from videomae.configfile import load_typed
from videomae.transforms import CLIP_TRANSFORMS

TransformName = Literal[tuple(CLIP_TRANSFORMS)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputSection(_Strict):
    # A directory or glob of videos, a CSV/JSONL manifest (uri[, label, split]) as ingest reads, or a clip shard
    # dataset (ingest's output: one window per stored clip).
    path: str
    kind: Literal["auto", "videos", "shards"] = "auto"  # auto: a directory with clips/ and videos.parquet is shards
    # Video ids are ingest's (source name + key), so features of an ingested corpus match its shards' ids.
    source: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")  # default: the path's file or folder name
    extensions: list[str] = Field(default_factory=list)  # directory/glob inputs: suffixes to list (empty = all)
    split: str | None = None  # only this split (manifest rows / shard clips that name one)
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @property
    def source_name(self) -> str:
        base = posixpath.basename(self.path.rstrip("/").split("*")[0].rstrip("/")) or "videos"
        return self.source or posixpath.splitext(base)[0]


class ModelSection(_Strict):
    source: str  # anything videomae.load_model reads: our model dir, a training checkpoint, a reference .pth, HF dir
    preset: str | None = None  # the architecture, for reference .pth files


class WindowSection(_Strict):
    # The reference's extract_tad_feature.py: 16 consecutive frames (the model's clip), a window every 4 frames.
    clip_len: int | None = Field(None, ge=2)  # default: the model's num_frames
    frame_stride: int = Field(1, ge=1)
    window_stride: int = Field(4, ge=1)
    # eval: short side -> img_size, centre crop, ImageNet mean/std (training's evaluation, /v1/embed).
    # reference_tad: the reference script's own (squash to img_size^2, no crop, no mean/std): see videomae/transforms.
    transform: TransformName = "eval"
    windows_per_chunk: int = Field(8, ge=1)  # windows decoded and shipped together


class RaySection(_Strict):
    actors: int = Field(1, ge=1)  # model replicas (one GPU each when the cluster has GPUs)
    gpus_per_actor: float | None = Field(None, ge=0)  # None: 1 when the cluster has a GPU, else 0
    cpus_per_actor: float = Field(1.0, gt=0)
    torch_threads: int = Field(1, ge=0)  # intra-op threads per CPU actor (0: torch's default)
    cpus_per_decode: float = Field(1.0, gt=0)
    decoders: int | None = Field(None, ge=1)  # decode tasks at once (None: Ray Data decides)
    decode_memory_mb: int = Field(1024, ge=1)  # per decode task: the worker (torch imported, ~500) + a slab of frames
    batch_size: int = Field(16, ge=1)  # windows per forward
    num_cpus: int | None = Field(None, ge=1)  # in-process Ray only; a cluster has its own


class ExtractConfig(_Strict):
    input: InputSection
    output: str  # the features directory (or URI)
    storage_options: dict[str, Any] = Field(default_factory=dict)  # the output filesystem's
    model: ModelSection
    windows: WindowSection = Field(default_factory=WindowSection)
    videos_per_part: int = Field(32, ge=1)  # videos per features/part-*.parquet (the unit a rerun skips)
    write_npy: bool = False  # also npy/<key>.npy, (num_windows, C) per video: the reference's layout for TAD tools
    progress_every_s: float = Field(30.0, gt=0)
    ray: RaySection = Field(default_factory=RaySection)


def load_config(path: str | None, overrides: list[str] | None = None) -> ExtractConfig:
    return load_typed(ExtractConfig, path, overrides, name_source=True)

