"""Dual-masked pre-training (VideoMAE V2) on Ray Train.

    python trainer/pretrain.py --config configs/pretrain/tiny.yaml [--set optim.max_steps=100 ...]
    ray job submit --working-dir . -- python trainer/pretrain.py --config configs/pretrain/vit_b.yaml

The recipe, top to bottom: validate the config and index the shards on the driver (a bad key or an empty dataset
stops here, before any worker starts) -> the training loop (trainer/loop.py) runs on every worker with this recipe's
task: the pre-training model and its masked-reconstruction loss on samples that carry their own encoder/decoder
masks (trainer/data.py) -> the final model is exported to `<run_dir>/model`, a directory the API loads.

Rerunning with the same `run.name` and `run.storage_path` resumes from the latest checkpoint; a worker that dies is
restarted from its last checkpoint (`run.max_failures`), with the data position continuing (trainer/checkpointing.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `ray job submit --working-dir . -- python trainer/pretrain.py` runs this file in the job's copy of the tree,
# where the project is not installed (or an image's older wheel is): the tree's root goes first, so the code shipped
# is the code that runs.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainer import loop
from trainer.checkpointing import unwrap
from trainer.config import PretrainConfig
from trainer.monitor import Monitor
from videomae.model import VideoMAEPretrain


def main(argv: list[str] | None = None, cfg: PretrainConfig | None = None):
    cfg = loop.recipe_config(PretrainConfig, argv, __doc__.splitlines()[0], cfg)
    plan, length = loop.validate_or_exit(lambda: loop.prepare(cfg))
    loop.log.info("pre-training %s: %d clips/epoch, %d steps (%d per epoch), global batch %d x %d repeats, lr %.3g",
                    cfg.model.preset, length.epoch_length, length.total_steps, length.steps_per_epoch,
                    cfg.global_batch, cfg.data.num_sample, cfg.optim.lr * cfg.lr_scale)
    return loop.fit(cfg, make_task, plan, length)


def make_task(cfg: PretrainConfig, info: dict, worker: loop.Worker) -> loop.Task:
    """On each worker: the pre-training model; its loss is the model's own (targets and loss live in the model); the
    learning-health checks (trainer/monitor.py) as its validation."""
    model = VideoMAEPretrain(cfg.model.architecture())
    monitor = None
    if cfg.monitor.enabled:
        try:
            monitor = Monitor(cfg, model.cfg)
        except ValueError as e:  # an unlabeled corpus without a held-out split: train, say what is not watched
            loop.log.warning("monitor off: %s", e)

    def check(wrapped: torch.nn.Module, step: int) -> dict[str, float]:
        return monitor.check(unwrap(wrapped), step, worker.device, worker.rank)

    return loop.Task(model, masked_reconstruction_loss, check if monitor else None, cfg.monitor.every)


def masked_reconstruction_loss(model: torch.nn.Module, batch: loop.Batch) -> torch.Tensor:
    return model(batch["clip"], batch["enc_mask"], batch["dec_mask"])[0]


if __name__ == "__main__":
    main()
