"""The classes of a supervised run: the merged label space of labels.json, or one source's own classes.

Post-pre-training trains on the merged space (K710 in the paper); fine-tuning and evaluation on one `target_source`
use that source's classes, reached from merged labels through `label_map` (the reference's label_710to400.json does
the same for K710 -> K400). Shared by trainer/postpretrain.py and trainer/evaluate.py.
"""

from __future__ import annotations

from trainer.config import EvaluateConfig, PostpretrainConfig
from videomae.shards import read_labels


def label_space(cfg: PostpretrainConfig | EvaluateConfig) -> dict:
    """{"num_classes", "label_map": merged label index -> class index (-1: not a class of this run), "to_merged":
    class index -> merged index (None for the merged space)}. JSON-able: it travels to the workers."""
    labels = read_labels(cfg.data.paths[0], cfg.data.storage_options)
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
