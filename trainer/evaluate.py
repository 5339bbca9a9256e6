"""Evaluation of a trained model on shards: k-NN and linear probe on frozen features, or the classifier.

    python trainer/evaluate.py --config configs/evaluate/knn_tiny.yaml [--set model.init_from=runs/pretrain-tiny/model]

- `knn`: pooled encoder features (centre view) of the labeled clips of `train_split` and `eval.split`; weighted k-NN
  (k = `knn_k`, temperature `knn_temperature`) on L2-normalised features; top-1 per clip.
- `linear`: a linear classifier on the same frozen, standardised features; top-1 per clip.
- `attentive`: an attentive probe (trainer/evaluation.py `AttentivePooler`, `attentive.*`): learned queries
  cross-attend over every frozen encoder token of the same view, then a linear layer; top-1 per clip. The protocol
  of VideoGLUE and V-JEPA: masked-video features need a learned pooling, which a linear probe on the mean cannot do.
- `probes`: the three on the same forward passes, the linear and the attentive probe once per seed of
  `linear_seeds` (default: run.seed), and the chance level (the share of the most frequent class among the scored
  clips).
- `classifier`: the model's own head with multi-view testing (`eval.num_clips` x `eval.num_crops`, probabilities
  averaged per video, the reference's protocol); top-1/top-5 per video.

Runs in this process (small enough for one machine; features are the expensive part, and they stream). Results are
logged and written to `<run.storage_path>/<run.name>/eval_<mode>.json`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# `ray job submit --working-dir . -- python trainer/evaluate.py` runs this file in the job's copy of the tree,
# where the project is not installed (or an image's older wheel is): the tree's root goes first, so the code shipped
# is the code that runs.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from trainer import evaluation, loop
from trainer.classes import label_space
from trainer.config import EvaluateConfig
from videomae import storage
from videomae.checkpoint import load_model
from videomae.model import CLASSIFY, MODEL_KINDS, model_kind


def main(argv: list[str] | None = None, cfg: EvaluateConfig | None = None) -> dict:
    cfg = loop.recipe_config(EvaluateConfig, argv, __doc__.splitlines()[0], cfg)
    if not cfg.model.init_from:
        loop.fail("model.init_from: give the model to evaluate (a model dir, training checkpoint or .pth)")
    model = loop.validate_or_exit(lambda: load_model(cfg.model.init_from, preset=cfg.model.preset))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    arch = model.cfg
    views = evaluation.ViewSpec(arch.img_size, arch.num_frames, cfg.data.frame_step, cfg.eval.num_crops)
    paths, options = cfg.data.paths, cfg.data.storage_options
    if cfg.mode == "classifier":
        if CLASSIFY not in MODEL_KINDS[model_kind(model)].serves:
            loop.fail("mode: classifier needs a model with a classification head")
        videos = evaluation.read_videos(paths, cfg.eval.split, cfg.sources, cfg.eval.num_clips, options)
        hits = evaluation.classify_videos(model, videos, views, device=device, batch_size=cfg.eval.batch_size,
                                          label_map=torch.tensor(label_space(cfg)["label_map"]))
        out = {"top1": hits["top1_hits"] / max(hits["videos"], 1), "top5": hits["top5_hits"] / max(hits["videos"], 1),
               "videos": hits["videos"]}
    else:
        out = probe_features(cfg, model, views, device)
    out["mode"] = cfg.mode
    loop.log.info("evaluation (%s) of %s: %s", cfg.mode, cfg.model.init_from, out)
    result = storage.join(cfg.run.run_dir, f"eval_{cfg.mode}.json")
    storage.write_text(result, json.dumps(out, indent=2) + "\n", cfg.run.storage_options)
    return out


def probe_features(cfg: EvaluateConfig, model: torch.nn.Module, views: evaluation.ViewSpec,
                   device: torch.device) -> dict:
    """The frozen-feature protocols of `cfg.mode` on the train and eval splits' labeled clips (one forward pass per
    clip; the tokens are kept only when an attentive probe needs them)."""
    tokens = cfg.mode in ("attentive", "probes")

    def features(split: str):
        parts = list(evaluation.iter_features(model, cfg.data.paths, split, views, device=device,
                                              batch_size=cfg.eval.batch_size, sources=cfg.sources,
                                              options=cfg.data.storage_options, tokens=tokens))
        if not parts:
            loop.fail(f"{'train_split' if split == cfg.train_split else 'eval.split'}: no labeled clips "
                      f"in split {split!r}")
        return [torch.cat(column) for column in zip(*parts, strict=True)]  # features, labels[, tokens]

    train, test = features(cfg.train_split), features(cfg.eval.split)
    train_y, test_y = train[1], test[1]
    n = int(max(train_y.max(), test_y.max())) + 1
    a = cfg.attentive

    def knn() -> float:
        return evaluation.knn_accuracy(train[0], train_y, test[0], test_y, cfg.knn_k, cfg.knn_temperature, n)

    def linear(seed: int) -> float:
        return evaluation.linear_probe_accuracy(train[0], train_y, test[0], test_y, n, cfg.linear_epochs,
                                                cfg.linear_lr, seed)

    def attentive(seed: int) -> float:
        return evaluation.attentive_probe_accuracy(train[2], train_y, test[2], test_y, n, a.epochs, a.lr, seed,
                                                   a.queries, a.batch_size, a.weight_decay)

    out = {"train_clips": len(train_y), "test_clips": len(test_y), "classes": n}
    if cfg.mode == "probes":
        seeds = cfg.linear_seeds or [cfg.run.seed]
        out.update(knn=knn(), linear_seeds={str(s): linear(s) for s in seeds},
                   attentive_seeds={str(s): attentive(s) for s in seeds},
                   chance=float(torch.bincount(test_y).max()) / len(test_y))
        out["linear"] = sum(out["linear_seeds"].values()) / len(seeds)
        out["attentive"] = sum(out["attentive_seeds"].values()) / len(seeds)
    else:
        out["top1"] = {"knn": knn, "linear": linear, "attentive": attentive}[cfg.mode](
            *(() if cfg.mode == "knn" else (cfg.run.seed,)))
    return out


if __name__ == "__main__":
    main()
