"""Nearest-clip search from the command line: build an index over extracted features, query it.

    python trainer/search.py build --features runs/features/sample --index runs/index/sample [--kind auto|flat|hnsw]
    python trainer/search.py query --index runs/index/sample --clip-id <clip_id> [--k 10]
    python trainer/search.py query --index runs/index/sample --video-id <video_id>
    python trainer/search.py query --index runs/index/sample --video some.mp4 [--start-frame 0] [--model DIR]

A video file is embedded as the extraction embedded the index's videos (the same windows and transform, with the
model the features were made with unless --model says otherwise); its windows' mean is the query. Results print as
a table, or as JSON with --json (the shape of POST /v1/search's `results`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

# `ray job submit --working-dir . -- python trainer/search.py` runs this file in the job's copy of the tree,
# where the project is not installed (or an image's older wheel is): the tree's root goes first, so the code shipped
# is the code that runs.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from trainer.extraction.chunks import Reject, Windows
from trainer.extraction.embedder import Embedder, embed_file
from trainer.extraction.inputs import Video
from trainer.loop import fail, setup_logging
from videomae import features
from videomae.search import KINDS, SearchIndex

log = logging.getLogger("trainer.extract")

def build(args: argparse.Namespace) -> dict:
    index = SearchIndex.build(args.features, args.index, kind=args.kind, threads=args.threads)
    m = index.meta
    log.info("search: indexed %d clips of %d dimensions (%s) in %.2f s -> %s", m["count"], m["dim"], m["kind"],
             m["build_s"], args.index)
    return m


def video_query(index: SearchIndex, path: str, model: str | None, start_frame: int | None) -> np.ndarray:
    meta_model, w = index.meta.get("model") or {}, index.meta.get("windows") or {}
    source = model or meta_model.get("source")
    if not source or not w:
        fail("--model: the index does not say which model made its features; give one")
    embedder = Embedder(source, None, batch_size=16)
    if meta_model.get("fingerprint") and features.weights_fingerprint(embedder.model) != meta_model["fingerprint"]:
        log.warning("search: %s is not the model that made the index's features; scores compare unlike features",
                    source)
    win = Windows(w["clip_len"], w["frame_stride"], w["window_stride"], w["transform"], w["img_size"], 8)
    try:
        _, feats = embed_file(Video("query", path, Path(path).name), win, embedder, start_frame)
    except Reject as e:
        fail(f"--video: {e.reason}: {e.detail}")
    return feats.mean(0)


def query(args: argparse.Namespace) -> list[dict]:
    index = SearchIndex.load(args.index)
    given = [x is not None for x in (args.clip_id, args.video_id, args.video)]
    if sum(given) != 1:
        fail("query: give one of --clip-id, --video-id, --video")
    exclude = None
    if args.clip_id is not None:
        if not index.has_clip(args.clip_id):
            fail(f"--clip-id: {args.clip_id} is not in the index")
        vector, exclude = index.clip_vector(args.clip_id), index.clip_row(args.clip_id)["video_id"]
    elif args.video_id is not None:
        if not index.has_video(args.video_id):
            fail(f"--video-id: {args.video_id} is not in the index")
        vector, exclude = index.video_vector(args.video_id), args.video_id
    else:
        vector = video_query(index, args.video, args.model, args.start_frame)
    hits = index.search(vector[None], args.k, [exclude if not args.include_query_video else None])[0]
    results = [index.describe(h) for h in hits]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{'score':>8}  {'label':<14} {'time (s)':<14} {'frames':<11} uri")
        for r in results:
            when = f"{r['start_s']:.2f}-{r['end_s']:.2f}" if r["start_s"] is not None else "-"
            frames = f"{r['start_frame']}-{r['end_frame']}"
            print(f"{r['score']:8.4f}  {str(r['label'] or '-'):<14} {when:<14} {frames:<11} {r['uri']}")
    return results


def main(argv: list[str] | None = None):
    setup_logging()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="index a features directory (trainer/extract.py's output)")
    b.add_argument("--features", required=True)
    b.add_argument("--index", required=True, help="the index directory to write")
    b.add_argument("--kind", choices=KINDS, default="auto", help="flat: exact; hnsw: approximate, for 10^6 and more")
    b.add_argument("--threads", type=int, default=0, help="faiss threads (0: all cores)")
    q = sub.add_parser("query", help="the nearest stored clips of a clip, a video, or a video file")
    q.add_argument("--index", required=True)
    q.add_argument("--clip-id")
    q.add_argument("--video-id")
    q.add_argument("--video", help="a video file; embedded with the index's model and windows")
    q.add_argument("--start-frame", type=int, help="--video: query with the one window starting here")
    q.add_argument("--model", help="--video: the model (default: the one the index's features were made with)")
    q.add_argument("--k", type=int, default=10)
    q.add_argument("--include-query-video", action="store_true", help="stored queries: keep the query's own video")
    q.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        return build(args) if args.command == "build" else query(args)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))


if __name__ == "__main__":
    main()
