"""Distillation of a small student from a large frozen teacher, on Ray Train.

    python trainer/distill.py --config configs/distill/tiny.yaml [--set teacher.init_from=runs/postpretrain-tiny/model]
    ray job submit --working-dir . -- python trainer/distill.py --config configs/distill/vit_b_from_g.yaml

VideoMAE V2 released ViT-S and ViT-B models distilled from its ViT-g, without the code (OpenGVLab/VideoMAEv2#61);
this recipe is ours, written from the usual feature + logit distillation (FitNets' projected hidden features,
Hinton et al.'s tempered logits), not from theirs.

Recipe: validate the config, load the teacher once on the driver to read it, and index the shards (every clip of
`data.split`, labels not needed) -> the training loop (trainer/loop.py) with this recipe's task: on every worker the
teacher, frozen, in eval mode, on the worker's device, its forward run on the student's clips inside the step's
autocast (the same precision as the student's) under no_grad, its tokens resampled to the student's token grid
where the patch sizes differ; the student, a preset at random or from `model.init_from`, with a classification head
of the teacher's classes when the teacher has one; the loss

    feature_weight x MSE(project(student tokens), layer_norm(teacher tokens))       every token of the full clip
  + logit_weight x T^2 KL(softmax(teacher logits / T) || softmax(student logits / T))   a teacher with a head

(`project`: a linear map from the student's width to the teacher's, an identity where they are equal; layer_norm
without affine weights, so the target's scale is the same for every teacher) -> val top-1 of the student's head
every `eval.every` steps and at the end (labeled val videos of the teacher's label space) -> the student exported to
`<run_dir>/model`, a classifier or an encoder model directory the API and extraction serve like any other. The
projection is training state: it is checkpointed in train_state.pt, not in the model directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `ray job submit --working-dir . -- python trainer/distill.py` runs this file in the job's copy of the tree, where
# the project is not installed (or an image's older wheel is): the tree's root goes first, so the code shipped is
# the code that runs.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

from trainer import evaluation, loop
from trainer.collectives import sum_across_workers
from trainer.config import DistillConfig
from trainer.postpretrain import build_classifier
from videomae import storage
from videomae.checkpoint import load_model
from videomae.model import MODEL_KINDS, VideoMAEClassifier, model_kind
from videomae.shards import read_labels


def main(argv: list[str] | None = None, cfg: DistillConfig | None = None):
    cfg = loop.recipe_config(DistillConfig, argv, __doc__.splitlines()[0], cfg)
    if cfg.model.init_from and not storage.exists(cfg.model.init_from):
        loop.fail(f"model.init_from: no checkpoint at {cfg.model.init_from}")
    info = loop.validate_or_exit(lambda: teacher_info(cfg))
    plan, length = loop.validate_or_exit(lambda: loop.prepare(cfg))
    loop.log.info("distilling %s (%d classes) into %s: %d clips/epoch, %d steps, effective batch %d, lr %.3g",
                  cfg.teacher.init_from, info["classes"], cfg.model.preset, length.epoch_length,
                  length.total_steps, cfg.global_batch, cfg.optim.lr * cfg.lr_scale)
    return loop.fit(cfg, make_task, plan, length, info)


def load_teacher(cfg: DistillConfig) -> torch.nn.Module:
    return load_model(cfg.teacher.init_from, preset=cfg.teacher.preset).eval().requires_grad_(False)


def teacher_info(cfg: DistillConfig) -> dict:
    """What the workers need of the teacher, read on the driver: its width and classes (0: no head), and whether the
    val videos' labels are its classes (then the student's head is validated)."""
    teacher = load_teacher(cfg)
    t, student = teacher.cfg, cfg.model.architecture()
    grid = teacher_grid(t, student.num_frames, student.img_size)
    if grid != student.grid:
        loop.log.info("the teacher's %s tokens of the student's clips are resampled to the student's %s", grid,
                      student.grid)
    classes = t.num_classes if MODEL_KINDS[model_kind(teacher)].head else 0
    names = read_labels(cfg.data.paths[0], cfg.data.storage_options)["names"]
    validate = classes > 0 and len(names) == classes
    if classes and not validate:
        loop.log.warning("the teacher has %d classes, labels.json %d: the student is not validated", classes,
                         len(names))
    return {"dim": t.embed_dim, "classes": classes, "validate": validate}


def teacher_grid(t, frames: int, size: int) -> tuple[int, int, int]:
    """The teacher's token grid on the student's clips (frames x size x size; its position table is resampled)."""
    return frames // t.tubelet_size, size // t.patch_size, size // t.patch_size


def resample_tokens(tokens: torch.Tensor, grid: tuple[int, int, int], to: tuple[int, int, int]) -> torch.Tensor:
    """Tokens (B, t*h*w, C) on `grid` -> (B, t'*h'*w', C) on `to` (trilinear): a teacher with another patch size (the
    ViT-g's 14 px against a ViT-B's 16) paired with the student token by token, where each covers the same place."""
    if grid == to:
        return tokens
    b, _, c = tokens.shape
    x = tokens.transpose(1, 2).reshape(b, c, *grid)  # (B, C, t, h, w)
    x = F.interpolate(x.float(), size=to, mode="trilinear", align_corners=False)  # (B, C, t', h', w')
    return x.flatten(2).transpose(1, 2)  # (B, N_student, C)


class Distiller(torch.nn.Module):
    """What the loop trains: the student and the projection of its tokens to the teacher's width. `served` names the
    part a checkpoint's model directory holds (trainer/checkpointing.py `served`).

    Training mode: (projected tokens (B, N, C_teacher), logits (B, classes) or None). Eval mode: the student's
    logits, so the classifier's validation (`evaluation.classify_videos`) runs through the wrapper (DDP, FSDP)."""

    served = "student"

    def __init__(self, student: VideoMAEClassifier, teacher_dim: int):
        super().__init__()
        self.student, self.cfg = student, student.cfg
        width = student.cfg.embed_dim
        self.project = torch.nn.Linear(width, teacher_dim) if width != teacher_dim else torch.nn.Identity()

    def forward(self, clip: torch.Tensor):
        tokens = self.student.forward_features(clip)  # (B, N, C_student)
        logits = self.student.classify(tokens) if self.cfg.num_classes else None  # (B, classes)
        return (self.project(tokens), logits) if self.training else logits

    def no_weight_decay(self) -> set[str]:
        return self.student.no_weight_decay()


def teacher_outputs(teacher: torch.nn.Module, clip: torch.Tensor,
                    grid: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The frozen teacher's tokens on the student's token `grid` (B, N, C) and, with a head, its logits (B, classes),
    from one forward pass."""
    with torch.no_grad():
        tokens = teacher.forward_features(clip)  # (B, N_teacher, C_teacher)
        logits = teacher.classify(tokens) if MODEL_KINDS[model_kind(teacher)].head else None
        own = teacher_grid(teacher.cfg, clip.shape[2], clip.shape[3])
    return resample_tokens(tokens, own, grid), logits


def distill_loss(student: tuple[torch.Tensor, torch.Tensor | None], teacher: tuple[torch.Tensor, torch.Tensor | None],
                 feature_weight: float, logit_weight: float, temperature: float) -> torch.Tensor:
    """feature_weight x token MSE against the layer-normed teacher tokens + logit_weight x tempered KL (scaled by T^2,
    so its gradients keep their size across temperatures). Both terms are always in the graph (a zero weight gives
    zero gradients, not unused parameters, which DDP refuses)."""
    (s_tokens, s_logits), (t_tokens, t_logits) = student, teacher
    target = F.layer_norm(t_tokens.float(), t_tokens.shape[-1:])  # (B, N, C_teacher)
    loss = feature_weight * F.mse_loss(s_tokens.float(), target)
    if t_logits is not None:
        t = temperature
        kl = F.kl_div(F.log_softmax(s_logits.float() / t, -1), F.log_softmax(t_logits.float() / t, -1),
                      log_target=True, reduction="batchmean")
        loss = loss + logit_weight * t * t * kl
    return loss


def make_task(cfg: DistillConfig, info: dict, worker: loop.Worker) -> loop.Task:
    """On each worker: the frozen teacher beside the student (+ projection), the distillation loss, and the student's
    val top-1 on this worker's share of the labeled val videos (when they are the teacher's classes)."""
    teacher = load_teacher(cfg).to(worker.device)
    student = build_classifier(cfg, info["classes"], None)  # a head of the teacher's classes, or none (an encoder)
    d = cfg.distill

    def loss(model: torch.nn.Module, batch: loop.Batch) -> torch.Tensor:
        clip = batch["clip"]  # (B, 3, T, S, S)
        return distill_loss(model(clip), teacher_outputs(teacher, clip, student.cfg.grid), d.feature_weight,
                            d.logit_weight, d.temperature)

    if not info["validate"]:
        return loop.Task(Distiller(student, info["dim"]), loss)
    videos = evaluation.read_videos(cfg.data.paths, cfg.eval.split, None, cfg.eval.num_clips,
                                    cfg.data.storage_options)[worker.rank::worker.world]
    views = evaluation.ViewSpec(student.cfg.img_size, student.cfg.num_frames, cfg.data.frame_step, cfg.eval.num_crops)

    def validate(model: torch.nn.Module, step: int) -> dict[str, float]:
        hits = evaluation.classify_videos(model, videos, views, device=worker.device, batch_size=cfg.eval.batch_size)
        t1, t5, n = sum_across_workers([hits["top1_hits"], hits["top5_hits"], hits["videos"]], worker.device)
        return {"val_top1": t1 / max(n, 1), "val_top5": t5 / max(n, 1), "val_videos": n}

    return loop.Task(Distiller(student, info["dim"]), loss, validate, cfg.eval.every)


if __name__ == "__main__":
    main()
