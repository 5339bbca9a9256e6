"""Ingest configuration: a YAML file validated into pydantic models, with `--set a.b=value` overrides.

`load_config(path, overrides)` is the pattern other services can copy: read YAML -> apply dotted overrides
(list items by index: `sources.0.kind=labeled`; values parsed as YAML scalars) -> validate, and report every
error with the dotted key that caused it ("sources.0.kind: Input should be 'unlabeled' or 'labeled'").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from videomae import storage
from videomae.configfile import ConfigError, Location, apply_override, load_typed  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class SourceKind:
    """What a source's `kind` means to the steps; SOURCE_KINDS is the one place source kinds are declared."""

    labeled: bool  # rows carry a label (manifests only); a row without one is rejected; names merge into labels.json
    survivor_rank: int  # dedupe: among copies in the same split, the lower rank is kept (ingest/dedupe.py)


SOURCE_KINDS = {"unlabeled": SourceKind(labeled=False, survivor_rank=1),
                "labeled": SourceKind(labeled=True, survivor_rank=0)}
SourceKindName = Literal[tuple(SOURCE_KINDS)]


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in a recipe should fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid")


class Source(_Strict):
    """One input source: a directory/glob of videos, or a CSV/JSONL manifest with columns uri, label, split."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: SourceKindName
    path: str  # relative paths resolve against the config's `root`
    # Frame stride for this source; the reference uses 2 for SSv2-like (fast motion) sources and 4 otherwise.
    stride: int | None = Field(default=None, ge=1)
    clips_per_video: int | None = Field(default=None, ge=1)
    clips_per_second: float | None = Field(default=None, gt=0)
    # Share of this source in a training mix; recorded in manifest.json for the trainer's sampler.
    weight: float = Field(default=1.0, ge=0)
    split: str = "train"  # split for inputs whose manifest row (or directory listing) names none
    # Label aliases: local name (after normalisation) -> merged name, e.g. {"moving left": "move left"}.
    aliases: dict[str, str] = Field(default_factory=dict)
    # Directory and glob sources: file extensions to list (empty = every file). Non-videos that pass are rejected.
    extensions: list[str] = Field(default_factory=list)
    storage_options: dict[str, Any] = Field(default_factory=dict)  # its filesystem's (credentials, endpoint, ...)


class Clips(_Strict):
    num_frames: int = Field(default=16, ge=1)
    stride: int = Field(default=4, ge=1)  # default for sources that set none
    short_side: int = Field(default=256, ge=16)
    clips_per_video: int = Field(default=1, ge=1)
    clips_per_second: float | None = Field(default=None, gt=0)  # when set, overrides clips_per_video
    max_clips_per_video: int = Field(default=64, ge=1)
    jpeg_quality: int = Field(default=90, ge=10, le=100)
    # Clip rows per Parquet row group: the trainer's unit of reading (a read task holds data.chunks_per_unit of them
    # in memory), so rows x a clip's bytes x chunks_per_unit is its memory (docs/ingest.md "Layout").
    row_group_rows: int = Field(default=256, ge=1)


class Dedupe(_Strict):
    enabled: bool = True
    # Signature: frames every `interval_s` seconds from the start (fixed times survive fps changes; trimming
    # becomes a whole-sample offset), at most `max_samples` of them.
    interval_s: float = Field(default=0.5, gt=0)
    max_samples: int = Field(default=16, ge=2)
    # Mean absolute difference (0..1) at the best time offset and crop scale below which two videos are copies.
    threshold: float = Field(default=0.04, gt=0, lt=1)
    # Alignment (ingest/signature.py): a copy may start up to max_offset_s earlier or later (the 8 s signature window
    # less min_overlap samples); the aligned samples must cover overlap_share of the shorter video; the distance is the
    # mean over the best match_share of them, so a corrupt or cut stretch of up to 1 - match_share of a copy is
    # outvoted by the rest (1.0: every aligned sample counts).
    max_offset_s: float = Field(default=6.0, ge=0)
    min_overlap: int = Field(default=3, ge=1)  # aligned samples needed to call two videos copies
    overlap_share: float = Field(default=0.5, ge=0, le=1)
    match_share: float = Field(default=0.6, gt=0, le=1)
    # LSH (p-stable, banded): `bands` keys per indexed sample, each `rows` quantised projections of width `width`.
    # Keys carry neither sample nor crop level (trims and crops move both), so two videos get ~(samples*3)^2
    # chances per band to meet: 16 coordinates at width 0.2 keep unrelated videos apart (bench/ingest.py: candidates
    # grow linearly to 10^6), while a copy (per-coordinate differences ~0.01-0.03) still shares some key.
    bands: int = Field(default=4, ge=1)
    rows: int = Field(default=16, ge=1)
    width: float = Field(default=0.2, gt=0)
    lsh_samples: int = Field(default=6, ge=1)  # the first samples of every video enter the index ...
    # ... and every lsh_every-th sample after them, so a copy starting later (whose first samples are the original's
    # later ones) shares at least lsh_samples / lsh_every of them with its original (0: none after the first)
    lsh_every: int = Field(default=3, ge=0)
    max_bucket: int = Field(default=64, ge=2)  # larger buckets are skipped (and counted), not expanded into all pairs
    seed: int = 0
    # The stages' sizes (ingest/dedupe_stages.py): a block's signatures are what one task holds (~3 KB each), a
    # partition's LSH keys what one sort holds (~108 keys of 16 B per video). They change no result.
    block_videos: int = Field(default=50_000, ge=1)
    partition_videos: int = Field(default=100_000, ge=1)


class RayOptions(_Strict):
    num_cpus: int | None = Field(default=None, ge=1)  # in-process Ray only; a cluster has its own
    videos_per_part: int = Field(default=32, ge=1)  # videos per clips/part-*.parquet (one Ray task each)
    blocks: int | None = Field(default=None, ge=1)  # Ray Data blocks for probe/fingerprint (default: auto)


class IngestConfig(_Strict):
    output: Location  # local paths are made absolute against the directory the command runs in (on the driver)
    storage_options: dict[str, Any] = Field(default_factory=dict)  # the output filesystem's (fsspec storage_options)
    # Where relative `sources[].path`s are: a directory or URI; by default the directory the command runs in. Made
    # absolute on the driver, so the Ray tasks that probe and decode read the files the user meant.
    root: Location = Field(".", validate_default=True)
    sources: list[Source] = Field(min_length=1)
    clips: Clips = Field(default_factory=Clips)
    dedupe: Dedupe = Field(default_factory=Dedupe)
    ray: RayOptions = Field(default_factory=RayOptions)
    decode_backend: Literal["auto", "decord", "pyav"] = "auto"

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, sources: list[Source]) -> list[Source]:
        names = [s.name for s in sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique, repeated: {dup}")
        return sources

    def stride_for(self, source: Source) -> int:
        return source.stride or self.clips.stride

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"no source named {name!r}; have {[s.name for s in self.sources]}")

    def path_of(self, source: Source) -> str:
        """The source's path, resolved against `root`."""
        return storage.resolve(self.root, source.path)

    @property
    def digest(self) -> str:
        """Hash of everything that changes output rows (not `ray`, which only changes how work is spread)."""
        payload = self.model_dump(exclude={"ray"}, mode="json")
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- loading
def load_config(path: str | Path | None, overrides: list[str] | None = None, **base) -> IngestConfig:
    """YAML (optional) + keyword defaults + `--set` overrides -> a validated IngestConfig; ConfigError names keys."""
    return load_typed(IngestConfig, path, overrides, base)
