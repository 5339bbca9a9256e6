"""The model job: chunk rows -> feature rows (on Ray Data actors, GPU when the cluster has one, or in this process)."""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import torch

from trainer.extraction.chunks import Reject, Windows, video_chunks
from trainer.extraction.inputs import Video


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


