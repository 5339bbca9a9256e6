"""Supervised post-pre-training (and fine-tuning) of the classifier on labeled shards, on Ray Train.

    python trainer/postpretrain.py --config configs/postpretrain/tiny.yaml [--set optim.max_steps=50 ...]
    ray job submit --working-dir . -- python trainer/postpretrain.py --config configs/postpretrain/vit_g_k710.yaml

Post-pre-training trains on the merged label space of labels.json (K710 in the paper). Fine-tuning on one source sets
`target_source`: only that source's clips, its own classes, and a merged head initialised by projecting its rows
through labels.json `to_merged` (the reference's label_710to400.json does the same for K710 -> K400).

Recipe: validate + read the label space + index on the driver -> the training loop (trainer/loop.py) with this
recipe's task: a classifier initialised from `model.init_from` (a pre-training checkpoint, ours or the reference's
.pth: encoder only; or a classifier: everything, head projected), trained with AdamW and layer-wise lr decay on
mixup/cutmix batches (timm, clips folded to (B, C*T, H, W) as the reference does) with label smoothing, and validated
multi-view (top-1/top-5 per video) every `eval.every` steps and at the end -> checkpoints and the exported model as
in pre-training.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `ray job submit --working-dir . -- python trainer/postpretrain.py` runs this file in the job's copy of the tree,
# where the project is not installed (or an image's older wheel is): the tree's root goes first, so the code shipped
# is the code that runs.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainer import evaluation, loop
from trainer.classes import label_space
from trainer.collectives import sum_across_workers
from trainer.config import AugmentSection, PostpretrainConfig
from videomae import storage
from videomae.checkpoint import init_classifier_from_pretrain, load_model, load_strict
from videomae.model import CLASSIFY, MODEL_KINDS, VideoMAEClassifier, model_kind


def main(argv: list[str] | None = None, cfg: PostpretrainConfig | None = None):
    cfg = loop.recipe_config(PostpretrainConfig, argv, __doc__.splitlines()[0], cfg)
    classes = loop.validate_or_exit(lambda: label_space(cfg))
    if cfg.model.init_from and not storage.exists(cfg.model.init_from):
        loop.fail(f"model.init_from: no checkpoint at {cfg.model.init_from}")
    plan, length = loop.validate_or_exit(lambda: loop.prepare(cfg, cfg.sources, labeled=True))
    loop.log.info("post-pre-training %s: %d classes, %d clips/epoch, %d steps, global batch %d x %d, lr %.3g",
                    cfg.model.preset, classes["num_classes"], length.epoch_length, length.total_steps,
                    cfg.global_batch, cfg.data.num_sample, cfg.optim.lr * cfg.lr_scale)
    return loop.fit(cfg, make_task, plan, length, classes)


def build_classifier(cfg: PostpretrainConfig, num_classes: int, to_merged: list[int] | None) -> VideoMAEClassifier:
    """A fresh classifier, initialised from `model.init_from` (pre-training encoder, or a whole classifier)."""
    clf = VideoMAEClassifier(cfg.model.architecture(num_classes=num_classes))
    source = cfg.model.init_from
    if not source:
        return clf
    if Path(source).suffix in (".pth", ".pt", ".bin"):
        return init_classifier_from_pretrain(clf, source)
    loaded = load_model(source)
    if CLASSIFY not in MODEL_KINDS[model_kind(loaded)].serves:  # an encoder, with a decoder or alone: a fresh head
        return init_classifier_from_pretrain(clf, loaded)
    state = loaded.state_dict()
    if to_merged is not None and state["head.weight"].shape[0] != num_classes:
        # Project the merged head onto the target source's classes (rows in the source's local order).
        idx = torch.tensor(to_merged)
        state["head.weight"], state["head.bias"] = state["head.weight"][idx], state["head.bias"][idx]
    return load_strict(clf, state, source=source)


def make_task(cfg: PostpretrainConfig, classes: dict, worker: loop.Worker) -> loop.Task:
    """On each worker: the classifier, the supervised loss (mixup/cutmix, label smoothing) and multi-view validation
    on this worker's share of the held-out videos."""
    model = build_classifier(cfg, classes["num_classes"], classes["to_merged"])
    label_map = torch.tensor(classes["label_map"], device=worker.device)  # merged label -> this run's class
    mixup, criterion = mixing(cfg.augment, cfg.data.batch_size * cfg.data.num_sample, classes["num_classes"])

    def loss(model: torch.nn.Module, batch: loop.Batch) -> torch.Tensor:
        clip, target = batch["clip"], label_map[batch["label"]]  # (B, 3, T, S, S), (B,)
        if mixup is not None:
            b, c, t, h, w = clip.shape
            folded, target = mixup(clip.reshape(b, c * t, h, w), target)  # the reference folds T into channels
            clip = folded.reshape(b, c, t, h, w)
        return criterion(model(clip), target)

    videos = evaluation.read_videos(cfg.data.paths, cfg.eval.split, cfg.sources, cfg.eval.num_clips,
                                    cfg.data.storage_options)[worker.rank::worker.world]
    arch = model.cfg
    views = evaluation.ViewSpec(arch.img_size, arch.num_frames, cfg.data.frame_step, cfg.eval.num_crops)

    def validate(model: torch.nn.Module, step: int) -> dict[str, float]:
        hits = evaluation.classify_videos(model, videos, views, device=worker.device,
                                          batch_size=cfg.eval.batch_size, label_map=label_map)
        t1, t5, n = sum_across_workers([hits["top1_hits"], hits["top5_hits"], hits["videos"]], worker.device)
        return {"val_top1": t1 / max(n, 1), "val_top5": t5 / max(n, 1), "val_videos": n}

    return loop.Task(model, loss, validate, cfg.eval.every)


def mixing(a: AugmentSection, rows: int, num_classes: int):
    """timm's Mixup (None when off) and the criterion that goes with it: soft-target CE, else CE + label smoothing."""
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    on = (a.mixup > 0 or a.cutmix > 0) and a.mixup_prob > 0
    if not on:
        return None, torch.nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)
    if rows % 2:
        raise ValueError("data.batch_size * data.num_sample must be even for mixup/cutmix")
    return Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, prob=a.mixup_prob, switch_prob=a.mixup_switch_prob,
                 label_smoothing=a.label_smoothing, num_classes=num_classes), SoftTargetCrossEntropy()


if __name__ == "__main__":
    main()
