"""Features for a whole corpus: the reference's TAD extraction (`extract_tad_feature.py`) as a Ray Data job.

    python trainer/extract.py --config configs/extract/sample.yaml [--set model.source=runs/pretrain-tiny/model]
    ray job submit --working-dir . -- python trainer/extract.py --config configs/extract/sample.yaml --set ...

Reads a directory, glob or manifest of videos (or ingest's clip shards), slides windows over every video (the
reference's default: 16 frames, one window every 4 frames), runs the model on Ray Data actors (GPU when the cluster
has one) and writes `features/part-*.parquet`, `rejects.parquet` and `manifest.json` under `output`
(docs/architecture.md "Features"), and with `write_npy` the reference's per-video `npy/<video>.npy` arrays of shape
(num_windows, C). A rerun skips the videos already written; `--no-ray` runs the same work in this process, one video
after another.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

# `ray job submit --working-dir . -- python trainer/extract.py` runs this file in the job's copy of the tree,
# where the project is not installed (or an image's older wheel is): the tree's root goes first, so the code shipped
# is the code that runs.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa

from trainer.extraction import inputs, runners
from trainer.extraction.chunks import Windows, describe_windows
from trainer.extraction.collect import Collector
from trainer.extraction.config import ExtractConfig, load_config
from trainer.loop import fail, setup_logging, validate_or_exit
from videomae import features, storage
from videomae.checkpoint import load_model
from videomae.configfile import config_parser
from videomae.model import model_kind

log = logging.getLogger("trainer.extract")


def parse(argv: list[str] | None) -> tuple[ExtractConfig, bool]:
    parser = config_parser(__doc__.splitlines()[0], "YAML under configs/extract/",
                           "model.source=runs/pretrain-tiny/model")
    parser.add_argument("--no-ray", action="store_true", help="run in this process, one video after another")
    args = parser.parse_args(argv)
    return validate_or_exit(lambda: load_config(args.config, args.overrides)), args.no_ray


def settings(cfg: ExtractConfig, model) -> tuple[Windows, dict]:
    """The resolved windows and what the manifest says about the model and them (its digest guards reruns)."""
    arch = model.cfg
    w = cfg.windows
    clip_len = w.clip_len or arch.num_frames
    if clip_len % arch.tubelet_size:
        fail(f"windows.clip_len: {clip_len} is not a multiple of the model's tubelet size ({arch.tubelet_size})")
    win = Windows(clip_len, w.frame_stride, w.window_stride, w.transform, arch.img_size, w.windows_per_chunk)
    fc_norm = getattr(model, "fc_norm", None) is not None  # a classifier's pooled feature is normed (forward_pooled)
    pooled = "fc_norm(mean of encoder tokens)" if fc_norm else "mean of encoder tokens"
    about = {"model": {"source": cfg.model.source, "preset": arch.preset, "model_type": model_kind(model),
                       "fingerprint": features.weights_fingerprint(model), "feature_dim": arch.embed_dim,
                       "feature": "forward_pooled: " + pooled,
                       "config": arch.to_json_dict()},
             "windows": describe_windows(win),
             "input": {"path": cfg.input.path, "kind": "shards" if inputs.is_shards(cfg.input) else "videos",
                       "source": cfg.input.source_name}}
    digest = json.dumps([about["model"]["fingerprint"], about["windows"], about["input"]["kind"]], sort_keys=True)
    about["settings_digest"] = hashlib.sha256(digest.encode()).hexdigest()[:16]
    return win, about


def write_outputs(cfg: ExtractConfig, about: dict, listed: int, rejects: list[dict], seconds: float,
                  timing: dict) -> dict:
    out, opts = cfg.output, cfg.storage_options
    table = pa.Table.from_pylist(rejects, schema=features.REJECTS_SCHEMA)
    features.write_table(storage.join(out, features.REJECTS), table, opts)
    written = features.read_features(out, ["video_id"], opts)["video_id"]
    counts = {"listed": listed, "videos": len(set(written.to_pylist())), "windows": len(written),
              "rejects": len(rejects), "by_reason": dict(Counter(r["reason"] for r in rejects))}
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    manifest = {"version": features.FORMAT_VERSION, "created_at": now,
                **about, "counts": counts, "last_run_s": round(seconds, 1),
                **{f"last_run_{k}": v for k, v in timing.items()}}
    storage.write_text(storage.join(out, features.MANIFEST), json.dumps(manifest, indent=2) + "\n", opts)
    return manifest


def main(argv: list[str] | None = None, cfg: ExtractConfig | None = None, no_ray: bool = False) -> dict:
    setup_logging()
    if cfg is None:
        cfg, no_ray = parse(argv)
    model = validate_or_exit(lambda: load_model(cfg.model.source, preset=cfg.model.preset))
    win, about = settings(cfg, model)
    del model  # the actors load their own
    previous = features.read_manifest(cfg.output, cfg.storage_options)
    if previous and previous.get("settings_digest") != about["settings_digest"]:
        fail(f"output: {cfg.output} holds features of another model or other window settings (manifest "
             f"{previous.get('settings_digest')}, now {about['settings_digest']}); choose a new output")
    videos = validate_or_exit(lambda: inputs.list_videos(cfg.input))
    if not videos:
        fail(f"input.path: no inputs found at {cfg.input.path}")
    done = inputs.written_video_ids(cfg.output, cfg.storage_options)
    todo = [v for v in videos if v.video_id not in done]
    log.info("extract: %d inputs, %d already written, %d to do (%s windows of %d frames every %d, transform %s)",
             len(videos), len(videos) - len(todo), len(todo), "shard" if about["input"]["kind"] == "shards" else
             "sliding", win.clip_len, win.window_stride, win.transform)
    collector = Collector(cfg, todo)
    started = time.monotonic()
    if todo:
        if no_ray:
            runners.run_local(cfg, todo, win, collector)
        else:
            runners.connect(cfg.ray)
            import ray

            problem = runners.resource_problem(cfg.ray, ray.cluster_resources())
            if problem:
                fail(f"ray: {problem}")
            runners.run_ray(cfg, todo, win, collector)
        collector.check_complete()
    manifest = write_outputs(cfg, about, len(videos), collector.rejects, time.monotonic() - started,
                             collector.progress.timing())
    log.info("extract: wrote %s: %s", cfg.output, manifest["counts"])
    return manifest


if __name__ == "__main__":
    main()
