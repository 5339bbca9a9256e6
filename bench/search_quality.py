"""Is nearest-clip search useful? Motion-class precision@k of the nearest clips from other videos, a pre-trained and a
random encoder side by side, against chance; and whether planted near-duplicate copies come back first.

    python -m ingest.sample_data data/sample --preset medium
    python bench/search_quality.py --data data/sample --model pretrained=runs/pretrain-nano/model \\
        --model random=nano [--per-class 12] [--frame-stride 2] [--json docs/bench/search_quality.json]

`--model NAME=SOURCE`: a model directory (anything videomae.load_model reads), or a preset name for that preset as
initialised (seed 0). For each model, trainer/extract.py (on Ray) extracts the features of one manifest: the first
`--per-class` train videos of every (source, class) of the sample's motion sources plus their val videos (labels
merged as ingest merges them: "moving_left" is "move left"), and every planted copy with its original
(planted.json). Then, with the faiss index of videomae/search.py:
- precision@k: for every labeled clip, the share of its k nearest labeled clips of *other* videos (copies of the
  same video left out too) that have its class; chance is that share for neighbours drawn at random;
- copies: for every clip of a planted copy, whether its nearest clip of another video belongs to its original.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

import videomae
from trainer import extract
from trainer.extraction.config import load_config
from videomae import features, listing
from videomae.search import SearchIndex

SOURCE = "bench"


def canonical(label: str, aliases: dict[str, str]) -> str:
    """The sample's merged class name (ingest's label merging: case and '_' folded, then aliases)."""
    name = " ".join(label.replace("_", " ").lower().split())
    return aliases.get(name, name)


def manifest_rows(data: Path, per_class: int) -> tuple[list[dict], dict[str, str]]:
    """Rows (uri relative to `data`, label) and copy -> original (uris)."""
    planted = json.loads((data / "planted.json").read_text())
    aliases = {k: v for src in planted.get("aliases", {}).values() for k, v in src.items()}
    rows, seen = [], set()
    for name in ("motion_a.csv", "motion_b.jsonl"):
        lines = listing.read_manifest(str(data / name))
        taken: dict[str, int] = {}
        for r in lines:
            if not r.get("label") or not (data / r["uri"]).exists():
                continue
            label = canonical(r["label"], aliases)
            if r.get("split") == "train":
                if taken.get(label, 0) >= per_class:
                    continue
                taken[label] = taken.get(label, 0) + 1
            rows.append({"uri": r["uri"], "label": label, "split": r.get("split") or "train"})
            seen.add(r["uri"])
    copies = {}
    for c in planted["near"] + planted["exact"]:
        copies[c["copy"]] = c["original"]
        for uri in (c["copy"], c["original"]):
            if uri not in seen:
                rows.append({"uri": uri, "label": ""})
                seen.add(uri)
    return rows, copies


def evaluate(table, copies: dict[str, str], ks: list[int], val_videos: set[str]) -> dict:
    vid = np.asarray(table["video_id"].to_pylist(), dtype=object)
    labels = np.asarray([x or "" for x in table["label"].to_pylist()], dtype=object)
    # A video and its copies are one group: neither counts as the other's neighbour for the class metric.
    group = {v: v for v in set(vid)}
    for copy, orig in copies.items():
        group[listing.make_video_id(SOURCE, copy)] = listing.make_video_id(SOURCE, orig)
    grp = np.asarray([group[v] for v in vid], dtype=object)

    labeled = np.flatnonzero(labels != "")
    sub = table.take(labeled)
    index = SearchIndex.from_table(sub, kind="flat")
    fetch = max(ks) + 64
    hits = index.search(features.feature_matrix(sub), fetch)
    prec = {k: [] for k in ks}
    chance = []
    lab_l, grp_l, vid_l = labels[labeled], grp[labeled], vid[labeled]
    for qi, h in enumerate(hits):
        others = [x.row for x in h if grp_l[x.row] != grp_l[qi]]
        for k in ks:
            prec[k].append(float(np.mean(lab_l[others[:k]] == lab_l[qi])))
        pool = grp_l != grp_l[qi]
        chance.append(float(np.mean(lab_l[pool] == lab_l[qi])))
    out = {f"p@{k}": round(float(np.mean(v)), 4) for k, v in prec.items()}
    out["chance"] = round(float(np.mean(chance)), 4)
    # Held-out queries only (val videos; the database is every labeled clip of other videos): what counts for an
    # encoder trained with these labels (post-pre-training saw the train videos' classes).
    val = np.asarray([v in val_videos for v in vid_l])
    for k, v in prec.items():
        out[f"val_p@{k}"] = round(float(np.mean(np.asarray(v)[val])), 4) if val.any() else None
    out["val_chance"] = round(float(np.mean(np.asarray(chance)[val])), 4) if val.any() else None
    out["val_clips"] = int(val.sum())
    out["labeled_clips"] = int(len(labeled))
    out["classes"] = int(len(set(lab_l)))

    # Copies: the nearest clip of another video, over everything extracted.
    full = SearchIndex.from_table(table, kind="flat")
    vectors = features.feature_matrix(table)
    found, total, per_kind = 0, 0, {}
    for copy, orig in copies.items():
        cid, oid = listing.make_video_id(SOURCE, copy), listing.make_video_id(SOURCE, orig)
        rows = np.flatnonzero(vid == cid)
        if not len(rows) or not (vid == oid).any():
            continue
        top = full.search(vectors[rows], 1, [cid] * len(rows))
        ok = [bool(t) and vid[t[0].row] == oid for t in top]
        found += sum(ok)
        total += len(ok)
        per_kind[copy] = round(float(np.mean(ok)), 3)
    out["copies_top1"] = round(found / max(total, 1), 4)
    out["copy_clips"] = total
    out["copies"] = per_kind
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a sample tree (python -m ingest.sample_data DIR)")
    ap.add_argument("--model", action="append", required=True, metavar="NAME=SOURCE")
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--frame-stride", type=int, default=2, help="frames between a window's frames (sample ingest: 2)")
    ap.add_argument("--window-stride", type=int, default=4)
    ap.add_argument("--k", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument("--keep", type=Path, help="keep the features here (default: a temp dir, removed)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-search-"))
    work = args.keep or tmp
    try:
        rows, copies = manifest_rows(args.data.resolve(), args.per_class)
        manifest = args.data.resolve() / "bench_search_manifest.jsonl"
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
        results = {}
        for spec in args.model:
            name, source = spec.split("=", 1)
            if source in videomae.list_presets():
                torch.manual_seed(0)
                videomae.create_model(source).save(work / f"model-{name}")
                source = str(work / f"model-{name}")
            cfg = load_config(None, [f"input.path={manifest}", f"input.source={SOURCE}", f"output={work / name}",
                                     f"model.source={source}", f"windows.frame_stride={args.frame_stride}",
                                     f"windows.window_stride={args.window_stride}", "ray.actors=1"])
            extract.main(cfg=cfg)
            val = {listing.make_video_id(SOURCE, r["uri"]) for r in rows if r.get("split") == "val"}
            results[name] = evaluate(features.read_features(str(work / name)), copies, args.k, val)
            print(json.dumps({name: results[name]}), flush=True)
        cols = [f"p@{k}" for k in args.k]
        print(f"\n| encoder | queries | {' | '.join(cols)} | chance | copies: nearest other clip is the original |")
        print("|---" * (len(cols) + 4) + "|")
        for name, r in results.items():
            print(f"| {name} | all ({r['labeled_clips']}) | {' | '.join(f'{r[c]:.3f}' for c in cols)} | "
                  f"{r['chance']:.3f} | {r['copies_top1']:.3f} ({r['copy_clips']} clips) |")
            val_cells = " | ".join(f"{r['val_' + c]:.3f}" for c in cols)
            print(f"| {name} | val ({r['val_clips']}) | {val_cells} | {r['val_chance']:.3f} | |")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"per_class": args.per_class, "frame_stride": args.frame_stride,
                                             "window_stride": args.window_stride, "models": args.model,
                                             "results": results}, indent=2) + "\n")
        manifest.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
