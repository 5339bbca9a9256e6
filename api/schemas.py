"""Request options and response bodies, apart from tensors.

Options arrive as query parameters (docs/architecture.md "HTTP"); unknown parameters are refused so a typo is an
error, not a silently ignored option. Bounds here are static; those that depend on the loaded model (clip length a
multiple of the tubelet, start within the video) are checked where the model is known and answered 422 the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from videomae.masks import DecoderKind, EncoderKind
from videomae.model import ModelKindName


class EmbedOptions(BaseModel):
    """Sliding-window clip features. Defaults: clips of the model's length, consecutive frames (frame_stride 1, the
    reference's `extract_tad_feature.py`), non-overlapping windows (window_stride = span; pass 4 for the
    reference's dense temporal-action-detection features)."""

    model_config = ConfigDict(extra="forbid")

    clip_len: int | None = Field(None, ge=2, le=64, description="frames per clip; default: the model's num_frames")
    frame_stride: int = Field(1, ge=1, le=64, description="frames between sampled frames inside a clip")
    window_stride: int | None = Field(None, ge=1, le=100_000,
                                      description="frames between clip starts; default: the clip span")
    pool: Literal["mean", "max"] = Field("mean", description="how the per-clip features are pooled over the video")
    normalize: bool = Field(False, description="L2-normalise each clip feature and the pooled feature")
    include_clips: bool = Field(True, description="return the per-clip features too")
    format: Literal["json", "npz"] = Field("json", description="json, or npz: float32 arrays `embedding` (C,), "
                                                               "`clips` (K, C), int64 `start_frame`, `end_frame` (K,)")


class ReconstructOptions(BaseModel):
    """One clip, masked as in pre-training, reconstructed by the decoder."""

    model_config = ConfigDict(extra="forbid")

    mask_ratio: float = Field(0.9, gt=0.0, lt=1.0, description="share of cubes hidden from the encoder")
    mask_type: EncoderKind = Field("tube", description="encoder masking (paper: tube)")
    decoder_mask: DecoderKind = Field(
        "none", description="decoder masking; none = every hidden cube is reconstructed (a complete picture)")
    decoder_mask_ratio: float = Field(0.5, ge=0.0, lt=1.0, description="share of cubes dropped from the decoder")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="mask seed; the same seed gives the same masks")
    start: int = Field(0, ge=0, le=10_000_000, description="first frame of the clip")
    frame_stride: int = Field(2, ge=1, le=64, description="frames between sampled frames")
    format: Literal["png", "json", "frames"] = Field(
        "png", description="png: the image grid; json: numbers and the image; frames: numbers and one image per frame "
                           "(the three tiles side by side), for playing the clip")


class SearchOptions(BaseModel):
    """The query is an uploaded video (multipart `file`), or a stored clip (`clip_id`) or video (`video_id`)."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=1, le=100, description="how many clips to return")
    clip_id: str | None = Field(None, min_length=1, max_length=256, description="query with this stored clip")
    video_id: str | None = Field(None, min_length=1, max_length=256,
                                 description="query with this stored video (the mean of its clip vectors)")
    start_frame: int | None = Field(None, ge=0, le=10_000_000,
                                    description="upload: query with the one window starting here (default: the "
                                                "mean of the upload's windows)")
    exclude_query_video: bool = Field(True, description="stored queries: leave out the clips of the query's video")

    @model_validator(mode="after")
    def _one_query(self) -> SearchOptions:
        if self.clip_id is not None and self.video_id is not None:
            raise ValueError("give clip_id or video_id, not both")
        return self


class ThumbnailOptions(BaseModel):
    """A stored clip's picture: the index names the video, the request only the clip."""

    model_config = ConfigDict(extra="forbid")

    clip_id: str = Field(min_length=1, max_length=256, description="a clip_id of the index (as /v1/search answers)")
    size: int = Field(160, ge=32, le=512, description="the longer side of the JPEG, in pixels")


class SearchHit(BaseModel):
    video_id: str
    uri: str
    clip_id: str
    start_frame: int
    end_frame: int = Field(description="last frame of the window (inclusive)")
    start_s: float | None = Field(description="where the clip starts in its video, in seconds (null: fps unknown)")
    end_s: float | None
    score: float = Field(description="cosine similarity of the clip's feature and the query's")
    label: str | None = Field(None, description="the clip's class, when its input had one")


class SearchQueryInfo(BaseModel):
    kind: Literal["upload", "clip", "video"]
    id: str | None = Field(None, description="the stored clip or video")
    windows: int = Field(description="windows the query feature is the mean of")


class SearchResponse(BaseModel):
    query: SearchQueryInfo
    results: list[SearchHit]
    index_size: int = Field(description="clips in the index")


class ClipEmbedding(BaseModel):
    start_frame: int = Field(description="first frame index of the window (decoded-frame order, from 0)")
    end_frame: int = Field(description="last frame index the window covers (every window lies within the video)")
    embedding: list[float]


class EmbedResponse(BaseModel):
    embedding: list[float] = Field(description="pooled over every clip of the video")
    dim: int
    pool: Literal["mean", "max"]
    normalized: bool
    feature: str = Field(description="what one clip feature is")
    num_frames: int = Field(description="frames in the video: the container's count where it holds, else the "
                                        "frames that decode")
    fps: float
    clip_len: int
    frame_stride: int
    window_stride: int
    clips: list[ClipEmbedding]
    header_num_frames: int = Field(0, description="the frame count the container claims")
    frames_counted: bool = Field(False, description="true when the claim failed and the frames were counted by "
                                                    "decoding them (num_frames is then that count)")
    rotation: int = Field(0, description="display rotation applied (counterclockwise degrees): frames are embedded "
                                         "upright, as a player shows them")
    stream_index: int = Field(0, description="the container's index of the video stream read (the first default "
                                             "one, else the first)")


class ReconstructResponse(BaseModel):
    loss: float = Field(description="the pre-training loss: MSE on per-cube normalised pixels, hidden and decoded")
    psnr: float = Field(description="dB, over the pixels of hidden-and-decoded cubes, in [0, 1] pixel units")
    start_frame: int
    frame_indices: list[int]
    grid: list[int] = Field(description="token grid (T/t, H/p, W/p)")
    num_tokens: int
    num_hidden: int = Field(description="cubes hidden from the encoder")
    num_decoded: int = Field(description="cubes the decoder predicted")
    num_scored: int = Field(description="hidden and decoded: the cubes the loss and PSNR count")
    layout: str
    image_png_base64: str
    fps: float | None = Field(None, description="the clip's frames per second of video time (the video's fps / "
                                                "frame_stride): the rate at which the frames play in real time")
    frames_png_base64: list[str] = Field(
        default_factory=list, description="format=frames: one PNG per clip frame (frame_indices' order), each the "
                                          "frame's tiles left to right: original, masked input, reconstruction")


class ModelInfo(BaseModel):
    id: str
    preset: str | None
    model_type: ModelKindName
    num_frames: int = Field(description="clip length the model was built for")
    img_size: int = Field(description="input frames are resized (short side) and center-cropped to this")
    tubelet_size: int
    patch_size: int
    feature_dim: int
    feature: str
    can_reconstruct: bool
    num_classes: int
    parameters: int


class ModelList(BaseModel):
    models: list[ModelInfo]


class Limits(BaseModel):
    """What this server accepts (its VIDEOMAE_* settings of the same names), so a client can say so before uploading."""

    max_upload_bytes: int
    max_duration_s: float
    max_frames: int
    max_width: int
    max_height: int
    max_pixels: int
    max_clips: int = Field(description="sliding windows one embed request may ask for")
    upload_timeout_s: float
    request_timeout_s: float


class IndexInfo(BaseModel):
    """The served search index and what it was built from (as its index.json records it)."""

    clips: int = Field(description="clips (vectors) in the index")
    videos: int
    kind: str = Field(description="faiss index kind: flat (exact) or hnsw")
    metric: str
    dim: int
    built_at: str | None
    features: str | None = Field(description="the features directory the index was built from")
    model_source: str | None = Field(description="the model the features were extracted with, as the extraction "
                                                 "named it")
    model_preset: str | None
    model_type: str | None
    windows: dict = Field(description="the window settings of the features: clip_len, frame_stride, window_stride, "
                                      "transform, img_size")
    made_by_served_model: bool = Field(description="the served weights made these features (else uploads cannot be "
                                                   "queries: stored clips and videos still can)")


class ErrorResponse(BaseModel):
    error: str = Field(description="short machine-readable tag")
    detail: str = Field(description="what went wrong and what to change")


class Health(BaseModel):
    status: str
