"""Feature extraction over a corpus: the config, the per-video work, and its two runners (Ray Data, one process).

The work is cut into *chunks*: a few consecutive windows of one video and the frames they need, decoded and
transformed once (windows every 4 frames share 12 of their 16 frames; the transforms treat every frame on its own, so
cutting windows from transformed frames gives exactly the per-window result). A chunk crosses Ray as one pickled
payload (numpy arrays), so no column type conversion stands between the decoder and the model.

    listing (driver) -> decode tasks (CPU: probe, decode, transform; one video or one shard part per task)
                     -> model actors (forward_pooled, on GPU when the cluster has one)
                     -> the driver (gathers each video's chunks, writes a part of `videos_per_part` videos at a time)

Per window the numbers are /v1/embed's: the same start frames (`videomae.transforms.sliding_windows`), frame indices
(`videomae.video.clip_indices`, clamped to the last frame), decoder (`videomae.video.decode_frames`), transform
(`videomae.transforms.CLIP_TRANSFORMS`, `eval` being the API's) and feature (`forward_pooled`).
"""

from __future__ import annotations

import logging
import os
import pickle
import posixpath
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from pydantic import BaseModel, ConfigDict, Field

from videomae import features, listing, shards, storage
from videomae.configfile import load_typed
from videomae.reasons import DECODE_ERROR, EMPTY, MISSING, NO_FRAMES, UNREADABLE
from videomae.transforms import CLIP_TRANSFORMS, sliding_windows
from videomae.video import VideoError, clip_indices, decode_frames, decode_jpegs, probe, sniff_file

log = logging.getLogger("trainer.extract")

TransformName = Literal[tuple(CLIP_TRANSFORMS)]


# ---------------------------------------------------------------------------------------------- config
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


# ---------------------------------------------------------------------------------------------- inputs
@dataclass
class Video:
    """One input video (or, for shard input, one shard video) and what the output says about it."""

    video_id: str
    uri: str
    key: str  # the npy name (path relative to the listing root, or the manifest's uri)
    label: str | None = None
    shard_files: list[str] = field(default_factory=list)  # shard input: the clip parts holding its clips


@dataclass(frozen=True)
class Windows:
    """Resolved window settings (the model's clip length and size filled in)."""

    clip_len: int
    frame_stride: int
    window_stride: int
    transform: str
    img_size: int
    windows_per_chunk: int


def is_shards(inp: InputSection) -> bool:
    if inp.kind != "auto":
        return inp.kind == "shards"
    opts = inp.storage_options
    return (not storage.is_glob(inp.path) and not listing.is_manifest(inp.path)
            and storage.exists(storage.join(inp.path, "videos.parquet"), opts)
            and storage.exists(storage.join(inp.path, "clips"), opts))


def list_videos(inp: InputSection) -> list[Video]:
    """Every input, in listing order, ids as ingest gives them. A repeated input is listed once."""
    opts, source = inp.storage_options, inp.source_name
    out: dict[str, Video] = {}
    if is_shards(inp):
        return _list_shard_videos(inp)
    if listing.is_manifest(inp.path):
        base = listing.manifest_base(inp.path, opts)
        for row in listing.read_manifest(inp.path, opts):
            if inp.split and str(row.get("split") or "") not in ("", inp.split):
                continue
            key = str(row["uri"])
            label = row.get("label")
            label = None if label is None or str(label).strip() == "" else str(label)
            vid = listing.make_video_id(source, key)
            out.setdefault(vid, Video(vid, storage.resolve(base, key), key, label))
    else:
        for uri, key in listing.list_files(inp.path, inp.extensions, opts):
            vid = listing.make_video_id(source, key)
            out.setdefault(vid, Video(vid, uri, key))
    return list(out.values())


def _list_shard_videos(inp: InputSection) -> list[Video]:
    opts = inp.storage_options
    with storage.open_file(storage.join(inp.path, "videos.parquet"), "rb", opts) as fh:
        vids = pq.read_table(fh, columns=["video_id", "uri", "label"]).to_pylist()
    try:
        names = shards.read_labels(inp.path, opts).get("names", [])
    except (FileNotFoundError, OSError):
        names = []
    by_id = {v["video_id"]: v for v in vids}
    files: dict[str, list[str]] = {}
    for f in shards.clip_files(inp.path, opts):
        with storage.open_file(f, "rb", opts) as fh:
            t = pq.read_table(fh, columns=["video_id", "split"])
        if inp.split:
            t = t.filter(pc.equal(t["split"], inp.split))
        for vid in dict.fromkeys(t["video_id"].to_pylist()):
            files.setdefault(vid, []).append(f)
    out = []
    for vid, fs in files.items():
        v = by_id.get(vid, {})
        label = v.get("label")
        name = names[label] if label is not None and 0 <= label < len(names) else None
        uri = v.get("uri") or vid
        out.append(Video(vid, uri, posixpath.basename(uri) or vid, name, fs))
    return out


# ---------------------------------------------------------------------------------------------- decode (CPU)
class Reject(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail[:500]


CHUNK_SCHEMA = pa.schema([("video_id", pa.string()), ("chunk", pa.int64()), ("num_chunks", pa.int64()),
                          ("reason", pa.string()), ("detail", pa.string()), ("payload", pa.binary())])


def _chunk_row(video_id: str, chunk: int, payload: dict | None = None, num_chunks: int = 0,
               reject: Reject | None = None) -> dict:
    return {"video_id": video_id, "chunk": chunk, "num_chunks": num_chunks,
            "reason": reject.reason if reject else "", "detail": reject.detail if reject else "",
            "payload": pickle.dumps(payload, protocol=5) if payload is not None else b""}


def _transformed(path: str, indices: list[int], win: Windows, slab: int = 16) -> torch.Tensor:
    """Decode and transform `indices` (sorted, unique) a slab at a time: (3, F, S, S); peak memory is one slab of
    full-size frames, not the chunk's."""
    transform = CLIP_TRANSFORMS[win.transform]
    parts = [transform(decode_frames(path, indices[i:i + slab]), win.img_size) for i in range(0, len(indices), slab)]
    return torch.cat(parts, dim=1)


def window_plan(num_frames: int, win: Windows) -> list[tuple[int, list[int]]]:
    """(start frame, frame indices) of every window of a video: /v1/embed's windows (at least one; a video shorter
    than a window repeats its last frame, as the reference's loaders do)."""
    starts = sliding_windows(num_frames, win.clip_len, win.frame_stride, win.window_stride)
    return [(s, clip_indices(clip_len=win.clip_len, stride=win.frame_stride, start=s, total_frames=num_frames))
            for s in starts]


def video_chunks(video: Video, win: Windows, options: storage.Options = None, start: int | None = None
                 ) -> Iterator[dict]:
    """The chunk rows of one video (`start`: only the window starting there); a single reject row (chunk -1) when it
    cannot be read, even after chunks."""
    try:
        with storage.local_file(video.uri, options) as path:
            if sniff_file(path) is None:
                size = storage.size(video.uri, options)
                raise Reject(EMPTY if size == 0 else UNREADABLE, "not a recognised video container")
            info = probe(path)
            if info.num_frames <= 0:
                raise Reject(NO_FRAMES, "the video stream has no frames")
            plan = window_plan(info.num_frames, win)
            if start is not None:
                if start >= info.num_frames:
                    raise Reject(NO_FRAMES, f"start frame {start} is beyond the video's {info.num_frames} frames")
                plan = [(start, clip_indices(clip_len=win.clip_len, stride=win.frame_stride, start=start,
                                             total_frames=info.num_frames))]
            groups = [plan[i:i + win.windows_per_chunk] for i in range(0, len(plan), win.windows_per_chunk)]
            for ci, group in enumerate(groups):
                wanted = sorted({i for _, idx in group for i in idx})
                frames = _transformed(path, wanted, win)  # (3, F, S, S)
                local = np.searchsorted(wanted, np.asarray([idx for _, idx in group]))  # (G, T) into frames
                payload = {"frames": frames.numpy(), "local": local.astype(np.int32),
                           "starts": [s for s, _ in group], "ends": [idx[-1] for _, idx in group],
                           "clip_ids": [listing.make_clip_id(video.video_id, s, win.frame_stride) for s, _ in group],
                           "fps": float(info.fps)}
                yield _chunk_row(video.video_id, ci, payload, num_chunks=len(groups))
    except Reject as e:
        yield _chunk_row(video.video_id, -1, reject=e)
    except VideoError as e:
        yield _chunk_row(video.video_id, -1, reject=Reject(e.reason, e.detail or e.reason))
    except FileNotFoundError:
        yield _chunk_row(video.video_id, -1, reject=Reject(MISSING, "listed but not found"))


def shard_chunks(video: Video, win: Windows, options: storage.Options = None) -> Iterator[dict]:
    """Shard input: one chunk per clip part file holding the video's clips; each stored clip is one window."""
    transform = CLIP_TRANSFORMS[win.transform]
    try:
        for ci, f in enumerate(video.shard_files):
            with storage.open_file(f, "rb", options) as fh:
                t = pq.read_table(fh, filters=[("video_id", "=", video.video_id)],
                                          columns=["clip_id", "start_frame", "stride", "num_frames", "fps", "frames"])
            rows = t.to_pylist()
            if not rows:
                raise Reject(NO_FRAMES, "no clips of this video in its shard part")
            for r in rows:
                if r["num_frames"] != win.clip_len:
                    raise Reject(DECODE_ERROR, f"a stored clip has {r['num_frames']} frames; the model takes "
                                                 f"{win.clip_len}")
            clips = [transform(decode_jpegs(r["frames"]), win.img_size) for r in rows]  # each (3, T, S, S)
            t_len = win.clip_len
            payload = {"frames": torch.cat(clips, dim=1).numpy(),
                       "local": np.arange(len(rows) * t_len, dtype=np.int32).reshape(len(rows), t_len),
                       "starts": [r["start_frame"] for r in rows],
                       "ends": [r["start_frame"] + (r["num_frames"] - 1) * r["stride"] for r in rows],
                       "clip_ids": [r["clip_id"] for r in rows], "fps": float(rows[0]["fps"] or 0.0)}
            yield _chunk_row(video.video_id, ci, payload, num_chunks=len(video.shard_files))
    except Reject as e:
        yield _chunk_row(video.video_id, -1, reject=e)
    except (OSError, ValueError) as e:  # a JPEG that does not decode, an unreadable part
        yield _chunk_row(video.video_id, -1, reject=Reject(DECODE_ERROR, f"{type(e).__name__}: {e}"))


# ---------------------------------------------------------------------------------------------- model (actors)
class Embedder:
    """Holds the model; turns chunk rows into feature rows (windows of several chunks batched together)."""

    def __init__(self, model_source: str, preset: str | None, batch_size: int, torch_threads: int = 0):
        from videomae import load_model

        if torch_threads:
            torch.set_num_threads(torch_threads)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = load_model(model_source, preset=preset).eval().to(self.device)
        self.batch_size = batch_size

    @torch.inference_mode()
    def embed(self, clips: torch.Tensor) -> np.ndarray:
        """(K, 3, T, S, S) -> (K, C) float32, `batch_size` clips per forward."""
        out = [self.model.forward_pooled(clips[i:i + self.batch_size].to(self.device)).float().cpu()
               for i in range(0, len(clips), self.batch_size)]
        return torch.cat(out).numpy()

    def rows(self, rows: list[dict]) -> list[dict]:
        payloads = [pickle.loads(r["payload"]) if not r["reason"] else None for r in rows]
        clips = [torch.from_numpy(p["frames"])[:, torch.from_numpy(p["local"]).long()].permute(1, 0, 2, 3, 4)
                 for p in payloads if p is not None]  # each (G, 3, T, S, S)
        feats = self.embed(torch.cat(clips)) if clips else np.zeros((0, 0), np.float32)
        out, at = [], 0
        for r, p in zip(rows, payloads, strict=True):
            if p is None:
                out.append(r)
                continue
            g = len(p["starts"])
            result = {k: p[k] for k in ("starts", "ends", "clip_ids", "fps")} | {"features": feats[at:at + g]}
            at += g
            out.append({**r, "payload": pickle.dumps(result, protocol=5)})
        return out

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Ray Data's entry: a batch of chunk rows -> the same rows, features as their payload."""
        return pa.Table.from_pylist(self.rows(batch.to_pylist()), schema=batch.schema)


def embed_file(video: Video, win: Windows, embedder: Embedder, start: int | None = None
               ) -> tuple[list[int], np.ndarray]:
    """(start frames, (K, C) features) of one video in this process (the search CLI's query). Raises Reject."""
    starts, feats = [], []
    for chunk in video_chunks(video, win, start=start):
        row = embedder.rows([chunk])[0]
        if row["reason"]:
            raise Reject(row["reason"], row["detail"])
        p = pickle.loads(row["payload"])
        starts += p["starts"]
        feats.append(p["features"])
    return starts, np.concatenate(feats)


# ---------------------------------------------------------------------------------------------- driver
@dataclass
class Progress:
    total: int
    every_s: float
    started: float = field(default_factory=time.monotonic)
    last: float = field(default_factory=time.monotonic)
    videos: int = 0
    rejects: int = 0
    windows: int = 0
    # Start-up against steady state: when the first windows' features came back, and the windows that came after.
    first_at: float | None = None
    last_at: float | None = None
    windows_after_first: int = 0

    def arrived(self, windows: int) -> None:
        """Features of `windows` windows came back (a chunk)."""
        self.last_at = time.monotonic()
        if self.first_at is None:
            self.first_at = self.last_at
        else:
            self.windows_after_first += windows

    def timing(self) -> dict:
        """Seconds to the first features (start-up: workers, model load, the first decode) and the rate after it."""
        if self.first_at is None:
            return {"first_result_s": None, "steady_windows_per_s": None}
        span = self.last_at - self.first_at
        steady = self.windows_after_first / span if self.windows_after_first and span > 0 else None
        return {"first_result_s": round(self.first_at - self.started, 2),
                "steady_windows_per_s": round(steady, 2) if steady is not None else None}

    def done(self, windows: int, rejected: bool) -> None:
        self.videos += 1
        self.rejects += int(rejected)
        self.windows += windows

    def log(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        el = max(now - self.started, 1e-9)
        eta = (self.total - self.videos) * el / max(self.videos, 1)
        log.info("extract: %d/%d videos (%d rejected), %d windows, %.1f windows/s, elapsed %.0fs, eta %.0fs",
                 self.videos, self.total, self.rejects, self.windows, self.windows / el, el, eta)


class Collector:
    """Gathers each video's chunks (arriving in any order) and writes a part once all of its videos are done."""

    def __init__(self, cfg: ExtractConfig, todo: list[Video]):
        self.cfg, self.out, self.opts = cfg, cfg.output, cfg.storage_options
        self.videos = {v.video_id: v for v in todo}
        parts = [todo[i:i + cfg.videos_per_part] for i in range(0, len(todo), cfg.videos_per_part)]
        self.part_of = {v.video_id: i for i, p in enumerate(parts) for v in p}
        self.parts = [[v.video_id for v in p] for p in parts]
        self.pending = [set(p) for p in self.parts]
        self.chunks: dict[str, dict[int, dict]] = {}
        self.expected: dict[str, int] = {}
        self.finished: dict[str, dict | Reject] = {}  # video_id -> its windows, or why it has none
        self.rejects: list[dict] = []
        self.progress = Progress(len(todo), cfg.progress_every_s)

    def add(self, row: dict) -> None:
        vid = row["video_id"]
        if vid in self.finished:
            return  # chunks still in flight for a video rejected mid-way
        if row["reason"]:
            self.chunks.pop(vid, None)
            self._finish(vid, Reject(row["reason"], row["detail"]))
            return
        chunk = pickle.loads(row["payload"])
        self.progress.arrived(len(chunk["starts"]))
        self.chunks.setdefault(vid, {})[int(row["chunk"])] = chunk
        self.expected[vid] = int(row["num_chunks"])
        if len(self.chunks[vid]) == self.expected[vid]:
            got = self.chunks.pop(vid)
            ps = [got[i] for i in range(len(got))]
            merged = {k: [x for p in ps for x in p[k]] for k in ("starts", "ends", "clip_ids")}
            self._finish(vid, {**merged, "fps": ps[0]["fps"], "features": np.concatenate([p["features"] for p in ps])})

    def _finish(self, vid: str, result: dict | Reject) -> None:
        self.finished[vid] = result
        v = self.videos[vid]
        if isinstance(result, Reject):
            self.rejects.append({"video_id": vid, "uri": v.uri, "reason": result.reason, "detail": result.detail})
            log.warning("extract: rejected %s (%s: %s)", v.uri, result.reason, result.detail)
        self.progress.done(0 if isinstance(result, Reject) else len(result["starts"]), isinstance(result, Reject))
        p = self.part_of[vid]
        self.pending[p].discard(vid)
        if not self.pending[p]:
            self._write_part(p)
        self.progress.log()

    def _write_part(self, p: int) -> None:
        cols: dict[str, list] = {n: [] for n in features.FEATURES_SCHEMA.names[:-1]}
        feats = []
        for vid in self.parts[p]:
            r = self.finished.pop(vid)
            if isinstance(r, Reject):
                continue
            v, n = self.videos[vid], len(r["starts"])
            if self.cfg.write_npy:  # before the part: the part on disk is what marks the video done
                features.write_npy(storage.join(self.out, features.npy_name(v.key)), r["features"], self.opts)
            cols["video_id"] += [vid] * n
            cols["uri"] += [v.uri] * n
            cols["clip_id"] += r["clip_ids"]
            cols["start_frame"] += r["starts"]
            cols["end_frame"] += r["ends"]
            cols["fps"] += [r["fps"]] * n
            cols["label"] += [v.label] * n
            feats.append(r["features"])
        if feats:
            table = features.features_table(cols, np.concatenate(feats))
            features.write_table(storage.join(self.out, "features", features.part_name(self.parts[p])), table,
                                 self.opts)
        self.progress.log(force=True)

    def check_complete(self) -> None:
        missing = [vid for p in self.pending for vid in p]
        if missing:
            raise RuntimeError(f"{len(missing)} videos never came back from the pipeline (first: {missing[0]})")


def chunk_source(inp: InputSection) -> Callable[[Video, Windows, storage.Options], Iterator[dict]]:
    return shard_chunks if is_shards(inp) else video_chunks


def run_local(cfg: ExtractConfig, todo: list[Video], win: Windows, collector: Collector) -> None:
    """The plain loop, in this process: decode a video, run the model, repeat (the benchmark's baseline)."""
    embedder = Embedder(cfg.model.source, cfg.model.preset, cfg.ray.batch_size, cfg.ray.torch_threads)
    chunks = chunk_source(cfg.input)
    for v in todo:
        for row in chunks(v, win, cfg.input.storage_options):
            for out in embedder.rows([row]):
                collector.add(out)


def connect(r: RaySection) -> None:
    """`RAY_ADDRESS` (set by `ray job submit`) selects a cluster; without it a local Ray starts in-process."""
    import ray
    from ray.data import DataContext

    if not ray.is_initialized():
        if not sys.stdout.isatty():  # a log file or a job's log: workers' lines without colour codes
            os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        ray.init(num_cpus=r.num_cpus, log_to_driver=True)
    DataContext.get_current().enable_progress_bars = False  # the driver logs its own progress lines


def resource_problem(r: RaySection, resources: dict) -> str | None:
    """Why the pipeline could never run on a cluster with these resources (None: it can). The model actors hold their
    CPUs (and GPUs) for the whole job, so a decode task needs CPU left over; without it the job waits forever."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    want_gpus = r.actors * (r.gpus_per_actor if r.gpus_per_actor is not None else (1.0 if gpus > 0 else 0.0))
    if want_gpus > gpus:
        return f"ray.actors={r.actors} x ray.gpus_per_actor need {want_gpus:g} GPUs; the cluster has {gpus:g}"
    need = r.actors * r.cpus_per_actor + r.cpus_per_decode
    if need > cpus:
        return (f"ray.actors={r.actors} x ray.cpus_per_actor={r.cpus_per_actor:g} + ray.cpus_per_decode="
                f"{r.cpus_per_decode:g} (one decode task) = {need:g} CPUs; the cluster has {cpus:g}: lower ray.actors "
                f"or give each a fraction of a CPU (e.g. --set ray.cpus_per_actor={max(cpus - 1, 0.5) / r.actors:g})")
    return None


def run_ray(cfg: ExtractConfig, todo: list[Video], win: Windows, collector: Collector) -> None:
    """Decode tasks -> model actors -> this driver, streaming (Ray Data)."""
    import ray

    chunks, opts, r = chunk_source(cfg.input), cfg.input.storage_options, cfg.ray

    def decode(batch: pa.Table) -> Iterator[pa.Table]:
        for item in batch.to_pylist():
            for row in chunks(Video(**item), win, opts):
                yield pa.Table.from_pylist([row], schema=CHUNK_SCHEMA)

    gpus = r.gpus_per_actor
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    # Videos as plain rows; up to 1024 blocks, so decode tasks spread over a cluster's CPUs.
    ds = ray.data.from_items([asdict(v) for v in todo], override_num_blocks=min(len(todo), 1024))
    # Decode tasks ask for the memory a slab of full-size frames takes. That also keeps them an operator of their own
    # (Ray Data fuses a task into the next actor when their resources match, as on a CPU-only cluster): they decode
    # on every free CPU while the model runs, and `actors` means model replicas.
    ds = ds.map_batches(decode, batch_size=1, batch_format="pyarrow", num_cpus=r.cpus_per_decode,
                        memory=r.decode_memory_mb * 2**20, compute=ray.data.TaskPoolStrategy(size=r.decoders))
    ds = ds.map_batches(Embedder, batch_size=max(1, r.batch_size // win.windows_per_chunk), batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=r.actors), num_gpus=gpus, num_cpus=r.cpus_per_actor,
                        fn_constructor_kwargs={"model_source": cfg.model.source, "preset": cfg.model.preset,
                                               "batch_size": r.batch_size,
                                               "torch_threads": 0 if gpus else r.torch_threads})
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            collector.add(row)


def describe_windows(win: Windows) -> dict:
    return {"clip_len": win.clip_len, "frame_stride": win.frame_stride, "window_stride": win.window_stride,
            "transform": win.transform, "img_size": win.img_size}


def written_video_ids(path: str, options: storage.Options = None) -> set[str]:
    """The videos a features directory already holds (their parts are on disk: a rerun skips them)."""
    return set(features.read_features(path, ["video_id"], options)["video_id"].to_pylist())
