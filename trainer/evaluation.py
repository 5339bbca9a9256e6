"""Evaluation on shards: multi-view classification (top-1/top-5 per video) and frozen features for k-NN / linear probe.

Multi-view testing follows the reference (`engine_for_finetuning.py` final_test + merge): several temporal clips per
video x spatial crops per clip, softmax probabilities averaged per video, then top-k against the video's label. The
temporal clips are the video's stored clips (ingest samples them evenly over the video), up to `num_clips`, evenly
chosen; the crops come from `videomae.augment.spatial_crops`.

Work is split over Ray Train workers by video (video i goes to rank i % world); counts are summed across ranks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from trainer.data import select_frames
from videomae import storage
from videomae.augment import spatial_crops
from videomae.shards import iter_clips
from videomae.transforms import eval_clip
from videomae.video.frames import decode_jpegs


@dataclass(frozen=True)
class ViewSpec:
    """How a stored clip becomes model input: the model's frame size and clip length, the step between stored frames,
    and the spatial crops per clip (1 or 3)."""

    img_size: int
    num_frames: int
    frame_step: int = 1
    num_crops: int = 1

    def frames(self, stored: list[bytes]) -> np.ndarray:
        """The clip's frames the model takes, decoded: (T, H, W, 3) uint8."""
        return decode_jpegs(select_frames(stored, self.num_frames, self.frame_step))


@dataclass
class Video:
    video_id: str
    label: int
    clips: list[list[bytes]]  # the chosen temporal views, JPEG frames each


def read_videos(paths: list[str], split: str, sources: list[str] | None, num_clips: int,
                options: storage.Options = None) -> list[Video]:
    """Labeled videos of a split, each with up to `num_clips` of its stored clips (evenly chosen, in time order)."""
    by_video: dict[str, list[dict]] = defaultdict(list)
    for path in paths:
        for row in iter_clips(path, split=split, options=options):
            if row["label"] is None or (sources and row["source"] not in sources):
                continue
            by_video[row["video_id"]].append(row)
    videos = []
    for vid in sorted(by_video):
        rows = sorted(by_video[vid], key=lambda r: r["start_frame"])
        pick = np.unique(np.linspace(0, len(rows) - 1, num=min(num_clips, len(rows))).round().astype(int))
        videos.append(Video(vid, int(rows[0]["label"]), [rows[i]["frames"] for i in pick]))
    return videos


def views(video: Video, spec: ViewSpec) -> torch.Tensor:
    """All test views of a video: (V, 3, T, S, S) with V = clips x crops."""
    out = []
    for stored in video.clips:
        out.extend(spatial_crops(spec.frames(stored), spec.img_size, spec.num_crops))  # from (T, H, W, 3)
    return torch.stack(out)


@torch.no_grad()
def classify_videos(model: torch.nn.Module, videos: list[Video], spec: ViewSpec, *, device: torch.device,
                    batch_size: int, label_map: torch.Tensor | None = None) -> dict[str, float]:
    """Sum of top-1/top-5 hits and the video count over `videos` (probabilities averaged over views)."""
    was_training = model.training
    model.eval()
    top1 = top5 = 0.0
    for video in videos:
        x = views(video, spec)
        probs = torch.cat([model(x[i:i + batch_size].to(device)).float().softmax(-1)
                           for i in range(0, len(x), batch_size)]).mean(0)  # (num_classes,)
        label = int(label_map[video.label]) if label_map is not None else video.label
        ranked = probs.argsort(descending=True)
        top1 += float(ranked[0] == label)
        top5 += float(label in ranked[:5].tolist())
    model.train(was_training)
    return {"top1_hits": top1, "top5_hits": top5, "videos": float(len(videos))}


# ------------------------------------------------------------------------------------------- frozen features
def iter_features(model: torch.nn.Module, paths: list[str], split: str, spec: ViewSpec, *, device: torch.device,
                  batch_size: int = 16, sources: list[str] | None = None, options: storage.Options = None,
                  tokens: bool = False) -> Iterator[tuple[torch.Tensor, ...]]:
    """(features (b, C), labels (b,)) over a split's labeled clips, centre view, pooled encoder features; with
    `tokens`, (features, labels, tokens (b, N, C)): every encoder token too, from the same forward pass (the
    attentive probe's input; fp32, N x C x 4 bytes a clip)."""
    clips, labels = [], []

    def flush():
        x = torch.stack(clips).to(device)
        every = model.forward_features(x)  # (b, N, C)
        pooled = model.pool(every).float().cpu(), torch.tensor(labels)
        return (*pooled, every.float().cpu()) if tokens else pooled

    with torch.no_grad():
        for path in paths:
            for row in iter_clips(path, split=split, options=options):
                if row["label"] is None or (sources and row["source"] not in sources):
                    continue
                clips.append(eval_clip(spec.frames(row["frames"]), spec.img_size))
                labels.append(int(row["label"]))
                if len(clips) == batch_size:
                    yield flush()
                    clips, labels = [], []
        if clips:
            yield flush()


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 k: int, temperature: float, num_classes: int) -> float:
    """Weighted k-NN on L2-normalised features (the DINO / InstDisc protocol): top-1 accuracy."""
    train_x = torch.nn.functional.normalize(train_x, dim=1)
    test_x = torch.nn.functional.normalize(test_x, dim=1)
    sim = test_x @ train_x.T  # (n_test, n_train)
    k = min(k, train_x.shape[0])
    w, idx = sim.topk(k, dim=1)  # (n_test, k)
    votes = torch.zeros(test_x.shape[0], num_classes)
    votes.scatter_add_(1, train_y[idx], (w / temperature).exp())
    return float((votes.argmax(1) == test_y).float().mean())


def linear_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                          num_classes: int, epochs: int, lr: float, seed: int = 0) -> float:
    """A linear classifier on frozen, standardised features (full-batch AdamW): top-1 accuracy."""
    torch.manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    head = torch.nn.Linear(a.shape[1], num_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(head(a), train_y).backward()
        opt.step()
    with torch.no_grad():
        return float((head(b).argmax(1) == test_y).float().mean())


class AttentivePooler(torch.nn.Module):
    """An attentive probe's head (V-JEPA's and VideoGLUE's frozen-backbone protocol): learned queries attend over the
    frozen encoder's tokens (one cross-attention block: attention + MLP, pre-norm), the queries' outputs are averaged
    and a linear layer classifies. Unlike mean pooling, it can weigh tokens by content and position, so what the
    encoder keeps in a few tokens (a moving object, the order of events) is not averaged away."""

    def __init__(self, dim: int, num_classes: int, queries: int = 1, heads: int = 4):
        super().__init__()
        heads = max(h for h in range(1, heads + 1) if dim % h == 0)
        self.query = torch.nn.Parameter(torch.zeros(1, queries, dim))
        torch.nn.init.trunc_normal_(self.query, std=0.02)
        self.norm_kv = torch.nn.LayerNorm(dim)
        self.attn = torch.nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm_mlp = torch.nn.LayerNorm(dim)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(dim, 4 * dim), torch.nn.GELU(), torch.nn.Linear(4 * dim, dim))
        self.norm_out = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(tokens)  # (B, N, C)
        x = self.attn(self.query.expand(len(tokens), -1, -1), kv, kv, need_weights=False)[0]  # (B, Q, C)
        x = x + self.mlp(self.norm_mlp(x))
        return self.head(self.norm_out(x.mean(1)))  # (B, classes)


def attentive_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                             test_y: torch.Tensor, num_classes: int, epochs: int, lr: float, seed: int = 0,
                             queries: int = 1, batch_size: int = 64, weight_decay: float = 0.05) -> float:
    """An attentive probe (`AttentivePooler`) trained on frozen tokens (B, N, C) with AdamW, minibatches in a seeded
    order and a cosine lr: top-1 accuracy on the test tokens."""
    torch.manual_seed(seed)
    mean, std = train_x.mean((0, 1)), train_x.std((0, 1)) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    probe = AttentivePooler(a.shape[-1], num_classes, queries)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * max(1, -(-len(a) // batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(a), generator=gen).split(batch_size):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(probe(a[idx]), train_y[idx]).backward()
            opt.step()
            sched.step()
    probe.eval()
    with torch.no_grad():
        pred = torch.cat([probe(b[i:i + 256]).argmax(1) for i in range(0, len(b), 256)])
    return float((pred == test_y).float().mean())
