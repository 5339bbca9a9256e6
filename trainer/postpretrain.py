"""Supervised post-pre-training (and fine-tuning) of the classifier on labeled shards, on Ray Train.

    python trainer/postpretrain.py --config configs/postpretrain/tiny.yaml [--set optim.max_steps=50 ...]
    ray job submit --working-dir . -- python trainer/postpretrain.py --config configs/postpretrain/vit_g_k710.yaml

Post-pre-training trains on the merged label space of labels.json (K710 in the paper). Fine-tuning on one source sets
`target_source`: only that source's clips, its own classes, and a merged head initialised by projecting its rows
through labels.json `to_merged` (the reference's label_710to400.json does the same for K710 -> K400).

Recipe: validate + index on the driver -> workers: classifier initialised from `model.init_from` (a pre-training
checkpoint, ours or the reference's .pth: encoder only; or a classifier: everything, head projected) -> AdamW with
layer-wise lr decay -> steps with mixup/cutmix (timm, clips folded to (B, C*T, H, W) as the reference does) and label
smoothing -> multi-view validation (top-1/top-5 per video) every `eval.every` steps and at the end -> checkpoints and
the exported model as in pre-training.
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a plain file (`python trainer/postpretrain.py`, `ray job submit`)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainer import checkpointing, evaluation, launch
from trainer.config import PostpretrainConfig
from trainer.data import ResumableDataset, SampleSpec
from trainer.metrics import MetricsSink, StepTimer
from trainer.optim import Schedule, build_optimizer, set_lr
from trainer.plan import EpochPlan, ShardIndex
from trainer.step import Precision, train_step
from videomae.checkpoint import init_classifier_from_pretrain, load_model, load_strict
from videomae.model import VideoMAEClassifier
from videomae.shards import read_labels


# ------------------------------------------------------------------------------------------------ driver
def label_space(cfg: PostpretrainConfig) -> dict:
    """Classes of the run and the map from merged label index -> class index (-1: not a class of this run)."""
    labels = read_labels(cfg.data.paths[0])
    merged = len(labels["names"])
    if cfg.target_source is None:
        n = getattr(cfg, "num_classes", None) or merged
        return {"num_classes": n, "label_map": list(range(merged)), "to_merged": None}
    if cfg.target_source not in labels["sources"]:
        raise ValueError(f"target_source: {cfg.target_source!r} is not in labels.json (have "
                         f"{sorted(labels['sources'])})")
    to_merged = labels["sources"][cfg.target_source]["to_merged"]
    label_map = [-1] * merged
    for local, m in enumerate(to_merged):
        label_map[m] = local
    return {"num_classes": len(to_merged), "label_map": label_map, "to_merged": to_merged}


def plan_run(cfg: PostpretrainConfig) -> tuple[EpochPlan, dict]:
    sources = [cfg.target_source] if cfg.target_source else None
    index = ShardIndex.build(cfg.data.paths, cfg.data.split, sources, labeled=True)
    plan = EpochPlan(index, cfg.run.seed, cfg.data.weights, cfg.data.chunks_per_unit)
    steps_per_epoch = max(1, plan.mean_epoch_length // cfg.global_batch)
    total = cfg.optim.max_steps or math.ceil(cfg.optim.epochs * steps_per_epoch)
    if cfg.model.init_from and not Path(cfg.model.init_from).exists() and "://" not in cfg.model.init_from:
        raise FileNotFoundError(f"model.init_from: no checkpoint at {cfg.model.init_from}")
    return plan, {"steps_per_epoch": steps_per_epoch, "total_steps": total, "epoch_length": plan.mean_epoch_length,
                  **label_space(cfg)}


def main(argv: list[str] | None = None, cfg: PostpretrainConfig | None = None):
    launch.setup_logging()
    cfg = cfg or launch.validate_or_exit(lambda: launch.parse_args("postpretrain", argv, __doc__.splitlines()[0]))
    plan, info = launch.validate_or_exit(lambda: plan_run(cfg))
    launch.log.info("post-pre-training %s: %d classes, %d clips/epoch, %d steps, global batch %d x %d, lr %.3g",
                    cfg.model.preset, info["num_classes"], info["epoch_length"], info["total_steps"],
                    cfg.global_batch, cfg.data.num_sample, cfg.optim.lr * cfg.lr_scale)
    launch.connect_ray()
    checkpointing.save_resolved_config(cfg.run.run_dir, cfg.model_dump(mode="json"))
    arch = cfg.model.architecture()
    spec = SampleSpec(img_size=arch.img_size, num_frames=arch.num_frames, frame_step=cfg.data.frame_step,
                      num_sample=cfg.data.num_sample, scales=tuple(cfg.data.scales), seed=cfg.run.seed,
                      grid=arch.grid, masks=None, flip=cfg.augment.flip, rand_aug=cfg.augment.rand_augment)
    dataset = ResumableDataset(plan, spec, cfg.run.run_dir, info["total_steps"] * cfg.global_batch,
                               cfg.data.batch_size, cfg.data.cpus_per_task, cfg.data.max_tasks, cfg.data.buffer_mb)
    loop_config = {"config": cfg.model_dump(mode="json"), **info}
    result = launch.torch_trainer(train_loop, loop_config, cfg, datasets={"train": dataset}).fit()
    if result.error:
        raise result.error
    exported = checkpointing.export_model(result.checkpoint.path, f"{cfg.run.run_dir}/model")
    launch.log.info("done: final metrics %s; model exported to %s", result.metrics, exported)
    return result


# ------------------------------------------------------------------------------------------------ workers
def build_classifier(cfg: PostpretrainConfig, num_classes: int, to_merged: list[int] | None) -> VideoMAEClassifier:
    """A fresh classifier, initialised from `model.init_from` (pre-training encoder, or a whole classifier)."""
    clf = VideoMAEClassifier(cfg.model.architecture(num_classes=num_classes))
    source = cfg.model.init_from
    if not source:
        return clf
    if Path(source).suffix in (".pth", ".pt", ".bin"):
        return init_classifier_from_pretrain(clf, source)
    loaded = load_model(source)
    if not isinstance(loaded, VideoMAEClassifier) or loaded.cfg.num_classes == 0:
        return init_classifier_from_pretrain(clf, loaded)
    state = loaded.state_dict()
    if to_merged is not None and state["head.weight"].shape[0] != num_classes:
        # Project the merged head onto the target source's classes (rows in the source's local order).
        idx = torch.tensor(to_merged)
        state["head.weight"], state["head.bias"] = state["head.weight"][idx], state["head.bias"][idx]
    return load_strict(clf, state, source=source)


def train_loop(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy

    cfg = PostpretrainConfig.model_validate(loop_config["config"])
    total, num_classes = loop_config["total_steps"], loop_config["num_classes"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    fsdp = cfg.scaling.strategy == "fsdp"
    launch.setup_logging()

    torch.manual_seed(cfg.run.seed)
    model = build_classifier(cfg, num_classes, loop_config["to_merged"])
    arch = model.cfg
    checkpoint = ray.train.get_checkpoint()
    position, ckpt_dir = {"step": 0, "samples_seen": 0}, None
    if checkpoint is not None:
        ckpt_dir = checkpoint.to_directory()
        position = checkpointing.restore_model(ckpt_dir, model)
    model = launch.wrap_model(model, cfg.scaling.strategy)
    if cfg.model.compile:
        model = torch.compile(model)
    optimizer = build_optimizer(checkpointing.unwrap(model), cfg.optim)
    precision = Precision.resolve(cfg.scaling.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    if ckpt_dir is not None:
        checkpointing.restore_optimizer(ckpt_dir, model, optimizer, scaler, fsdp)
    schedule = Schedule.from_config(cfg.optim, cfg.lr_scale, total, loop_config["steps_per_epoch"])

    a = cfg.augment
    rows = cfg.data.batch_size * cfg.data.num_sample
    mixing = (a.mixup > 0 or a.cutmix > 0) and a.mixup_prob > 0
    if mixing and rows % 2:
        raise ValueError("data.batch_size * data.num_sample must be even for mixup/cutmix")
    mixup = Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, prob=a.mixup_prob, switch_prob=a.mixup_switch_prob,
                  label_smoothing=a.label_smoothing, num_classes=num_classes) if mixing else None
    criterion = SoftTargetCrossEntropy() if mixing else torch.nn.CrossEntropyLoss(label_smoothing=a.label_smoothing)
    label_map = torch.tensor(loop_config["label_map"])
    sources = [cfg.target_source] if cfg.target_source else None
    val_videos = evaluation.read_videos(cfg.data.paths, cfg.eval.split, sources, cfg.eval.num_clips)[rank::world]

    def validate() -> dict[str, float]:
        hits = evaluation.classify_videos(model, val_videos, device, arch.img_size, arch.num_frames,
                                          cfg.data.frame_step, cfg.eval.num_crops, cfg.eval.batch_size, label_map)
        t1, t5, n = launch.sum_across_workers([hits["top1_hits"], hits["top5_hits"], hits["videos"]], device)
        return {"val_top1": t1 / max(n, 1), "val_top5": t5 / max(n, 1), "val_videos": n}

    step, start_step = position["step"], position["step"]
    if step >= total:  # restarted after its last checkpoint: nothing left to train (no report, on every rank)
        launch.log.info("run already complete at step %d of %d", step, total)
        return
    sink = MetricsSink(cfg.run.run_dir, total, cfg.run.tensorboard) if rank == 0 else None
    timer, losses, norms, first_seq = StepTimer(), [], [], None
    batches = ray.train.get_dataset_shard("train").iter_torch_batches(
        batch_size=rows, drop_last=True, prefetch_batches=cfg.data.prefetch_batches)
    model.train()
    for batch in batches:
        if step >= total:
            break
        first_seq = int(batch["seq"].min()) if first_seq is None else first_seq
        clip = batch["clip"].to(device, non_blocking=True)  # (B, 3, T, S, S)
        target = label_map[batch["label"]].to(device)  # (B,) merged -> this run's classes
        if mixup is not None:
            b, c, t, h, w = clip.shape
            folded, target = mixup(clip.reshape(b, c * t, h, w), target)  # the reference folds T into channels
            clip = folded.reshape(b, c, t, h, w)
        set_lr(optimizer, schedule(step))
        result = train_step(model, optimizer, functools.partial(_classification_loss, model, criterion, clip, target),
                            precision, scaler, cfg.optim.clip_grad, step)
        step += 1
        losses.append(result.loss)
        norms.append(result.grad_norm)
        timer.tick(clip.shape[0], clip.shape[0] * arch.num_patches)

        last = step == total
        validating = last or (cfg.eval.every is not None and step % cfg.eval.every == 0)
        if step % cfg.run.log_every and step % cfg.run.checkpoint_every and not validating:
            continue
        samples_seen = step * cfg.global_batch
        metrics = launch.mean_across_workers({"loss": sum(losses) / max(len(losses), 1),
                                              "grad_norm": sum(norms) / max(len(norms), 1), **timer.window()}, device)
        metrics["clips_per_s"] *= world
        metrics["tokens_per_s"] *= world
        metrics.update(lr=schedule(step - 1), step=step, samples_seen=samples_seen,
                       epoch=samples_seen / loop_config["epoch_length"], attempt_start_step=start_step,
                       attempt_first_seq=first_seq)
        losses, norms = [], []
        if validating:
            metrics.update(validate())
        if sink is not None:
            sink.log(step, metrics)
        if step % cfg.run.checkpoint_every == 0 or last:
            model_state, optim_state = checkpointing.full_state(model, optimizer, fsdp)
            write = None if rank else functools.partial(
                checkpointing.write_checkpoint, model=model, model_state=model_state, optim_state=optim_state,
                scaler=scaler, step=step, samples_seen=samples_seen, epoch=metrics["epoch"])
            checkpointing.report_checkpoint(metrics, write)
        else:
            ray.train.report(metrics)
    if sink is not None:
        sink.close()


def _classification_loss(model, criterion, clip, target):
    return criterion(model(clip), target)


if __name__ == "__main__":
    main()
