"""The driver's job: gather each video's chunks (in any order), write a part once its videos are done, log progress."""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass, field

import numpy as np

from trainer.extraction.chunks import Reject
from trainer.extraction.config import ExtractConfig
from trainer.extraction.inputs import Video
from videomae import features, storage

log = logging.getLogger("trainer.extract")

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
            self.expected.pop(vid, None)
            self._finish(vid, Reject(row["reason"], row["detail"]))
            return
        chunk = pickle.loads(row["payload"])
        self.progress.arrived(len(chunk["starts"]))
        self.chunks.setdefault(vid, {})[int(row["chunk"])] = chunk
        # Rows may arrive in any order; each says how many chunks the video had at most when it was made, the last
        # one exactly (trainer/extraction/chunks.py): the least seen is the count once all of those are in.
        self.expected[vid] = min(self.expected.get(vid, int(row["num_chunks"])), int(row["num_chunks"]))
        if all(i in self.chunks[vid] for i in range(self.expected[vid])):
            got = self.chunks.pop(vid)
            ps = [got[i] for i in range(self.expected.pop(vid))]
            merged = {k: [x for p in ps for x in p[k]] for k in ("starts", "ends", "clip_ids")}
            # The last chunk's rate: the frames counted, where a read proved the container's claim wrong.
            self._finish(vid, {**merged, "fps": ps[-1]["fps"], "features": np.concatenate([p["features"] for p in ps])})

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


