"""Learning health of a pre-training run: what tells a user early whether the run is learning features or stuck.

The training loss alone cannot: each step's loss is over that step's own decoded tokens, it falls fast and then
flattens whether or not the encoder keeps improving (docs/results.md "Learning health"). Every `monitor.every` steps
and at the end, `Monitor.check` adds to the run's metrics (metrics.jsonl, TensorBoard):
- `heldout_loss`: the masked-reconstruction loss on clips of `monitor.split` (never trained on), centre view, with
  tube masks fixed per clip (numpy.random.default_rng([mask_seed, i])) and every hidden token decoded (V1-style, so
  runs with any decoder mask are scored on the same tokens); a random model scores ~1.0-1.3 there. Also
  `heldout_loss_zero`: what predicting nothing (all zeros) scores on the same tokens, the line to beat.
- `probe_top1`: k-NN (or a linear probe) on pooled frozen features, fit on labeled clips of `data.split` and scored
  on labeled clips of `monitor.split`, when the data has labels. Reconstruction can improve while this stays at
  chance (the encoder learns colours, not what the labels need); rising, it says the features are becoming useful.
- a picture per check, `<run_dir>/monitor/step_<step>.png` (videomae/pictures.py: original, masked input,
  reconstruction, the prediction alone, error).
Every rank computes the same numbers on the same clips (FSDP needs every rank in each forward); rank 0 writes.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from trainer.evaluation import ViewSpec, knn_accuracy, linear_probe_accuracy
from videomae import storage
from videomae.masks import MaskingConfig, sample_masks
from videomae.pictures import ROWS, grid_image, panels
from videomae.shards import iter_clips
from videomae.transforms import eval_clip

log = logging.getLogger("trainer")


@dataclass
class Clips:
    frames: np.ndarray  # (n, T, H, W, 3) uint8, the model's frames of each clip
    labels: np.ndarray  # (n,) int, -1 unlabeled


def read_clips(paths: list[str], split: str, limit: int, spec: ViewSpec, labeled: bool,
               options: storage.Options = None) -> Clips:
    """Up to `limit` clips of `split` (labeled ones only if `labeled`), evenly over their sorted ids, so every source
    and class keeps its share."""
    rows = []
    for path in paths:
        rows.extend(r for r in iter_clips(path, split=split, options=options)
                    if not labeled or r["label"] is not None)
    rows.sort(key=lambda r: r["clip_id"])
    if len(rows) > limit:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, limit).round().astype(int)]
    frames = np.stack([spec.frames(r["frames"]) for r in rows]) if rows else np.zeros((0,), np.uint8)
    labels = np.array([-1 if r["label"] is None else int(r["label"]) for r in rows], np.int64)
    return Clips(frames, labels)


class Monitor:
    def __init__(self, cfg, arch):
        m, d = cfg.monitor, cfg.data
        self.cfg, self.arch, self.run_dir, self.options = m, arch, cfg.run.run_dir, cfg.run.storage_options
        spec = ViewSpec(arch.img_size, arch.num_frames, d.frame_step)
        self.heldout = read_clips(d.paths, m.split, m.max_clips, spec, False, d.storage_options)
        if not len(self.heldout.labels):
            raise ValueError(f"monitor.split: no clips in split {m.split!r} (set monitor.every: null to turn the "
                             "monitor off)")
        masking = MaskingConfig(encoder=cfg.mask.encoder, encoder_ratio=cfg.mask.encoder_ratio, decoder="none")
        self.enc = torch.from_numpy(np.concatenate([
            sample_masks(masking, arch.grid, 1, np.random.default_rng([m.mask_seed, i]))[0]
            for i in range(len(self.heldout.labels))]))  # (n, N) True = hidden
        self.train = self.test = None
        if m.probe != "none":
            test = self.heldout if (self.heldout.labels >= 0).all() else read_clips(
                d.paths, m.split, m.max_clips, spec, True, d.storage_options)
            train = read_clips(d.paths, d.split, m.probe_train_clips, spec, True, d.storage_options)
            if len(train.labels) and len(test.labels):
                self.train, self.test = train, test
        log.info("monitor: %d held-out clips of split %r, probe %s", len(self.heldout.labels), m.split,
                 f"{m.probe} ({len(self.train.labels)} -> {len(self.test.labels)} labeled clips)"
                 if self.train is not None else "off (no labeled clips)")

    def _inputs(self, frames: np.ndarray) -> torch.Tensor:
        return torch.stack([eval_clip(f, self.arch.img_size) for f in frames])  # (b, 3, T, S, S)

    @torch.no_grad()
    def _features(self, model, clips: Clips, device) -> torch.Tensor:
        out = [model.forward_pooled(self._inputs(clips.frames[i:i + 64]).to(device)).float().cpu()
               for i in range(0, len(clips.labels), 64)]
        return torch.cat(out)

    @torch.no_grad()
    def check(self, model: torch.nn.Module, step: int, device: torch.device, rank: int) -> dict[str, float]:
        """The numbers above for `model` (the bare pre-training model); rank 0 also writes the picture."""
        was = model.training
        model.eval()
        losses, zeros = [], []
        for i in range(0, len(self.heldout.labels), 64):
            x = self._inputs(self.heldout.frames[i:i + 64]).to(device)
            enc = self.enc[i:i + 64].to(device)
            loss, _ = model(x, enc, enc)
            losses.append(float(loss) * len(x))
            zeros.append(float(_zero_loss(model, x, enc)) * len(x))
        n = len(self.heldout.labels)
        out = {"heldout_loss": sum(losses) / n, "heldout_loss_zero": sum(zeros) / n}
        if self.train is not None:
            a, b = self._features(model, self.train, device), self._features(model, self.test, device)
            ya, yb = torch.from_numpy(self.train.labels), torch.from_numpy(self.test.labels)
            classes = int(max(ya.max(), yb.max())) + 1
            if self.cfg.probe == "knn":
                out["probe_top1"] = knn_accuracy(a, ya, b, yb, 20, 0.07, classes)
            else:
                out["probe_top1"] = linear_probe_accuracy(a, ya, b, yb, classes, 100, 1e-2, 0)
        if self.cfg.pictures:  # every rank runs the model (FSDP gathers weights collectively); rank 0 writes
            rows = self.picture_rows(model)
            if rank == 0:
                self.write_picture(rows, step)
        model.train(was)
        return out

    def picture_rows(self, model) -> list[np.ndarray]:
        picks = np.linspace(0, len(self.heldout.labels) - 1, self.cfg.picture_clips + 2)[1:-1].round().astype(int)
        rows = []
        for i in picks:
            p = panels(model, self._inputs(self.heldout.frames[i:i + 1])[0], self.enc[i], self.enc[i])
            rows += [p[k] for k in ROWS]
        return rows

    def write_picture(self, rows: list[np.ndarray], step: int) -> None:
        buf = io.BytesIO()
        Image.fromarray(grid_image(rows, every=self.arch.tubelet_size)).save(buf, format="PNG")
        storage.write_bytes(storage.join(self.run_dir, "monitor", f"step_{step:07d}.png"), buf.getvalue(),
                            self.options)


def _zero_loss(model, x: torch.Tensor, enc: torch.Tensor) -> torch.Tensor:
    """The loss of predicting all zeros (each hidden cube's mean, in normalised units) on the same tokens."""
    from videomae.targets import masked_loss, reconstruction_targets

    cfg = model.cfg
    targets = reconstruction_targets(x, cfg.tubelet_size, cfg.patch_size)  # (b, N, P)
    n_dec = int(enc[0].sum())
    return masked_loss(targets.new_zeros(x.shape[0], n_dec, targets.shape[-1]), targets, enc, enc)
