"""Signature distances on a generated sample set: every planted copy against its original, and the closest pair of
distinct videos (the margin against false merges), for the default alignment and, in the same run, the old one
(offsets up to 2 s, the mean over every aligned sample) as the baseline.

    python bench/dedupe_distances.py [--preset default] [--seed 0] [--json out.json]

Generates the sample set (`ingest.sample_data`, into a temporary directory), runs the probe and fingerprint steps on
every input in this process, then prints one row per planted copy kind (its distance under each alignment, and
whether it is within the sample config's threshold) and the closest distinct pair under each. Distinct: every video
that is not a planted copy (exact, near or leak), all pairs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from ingest import dedupe, signature
from ingest.config import IngestConfig, load_config
from ingest.sample_data import generate, sources_config
from ingest.steps.fingerprint import fingerprint_record
from ingest.steps.listing import list_inputs
from ingest.steps.probe import probe_record

REPO = Path(__file__).resolve().parents[1]


def alignments(cfg: IngestConfig) -> dict[str, dict]:
    old = cfg.dedupe.model_copy(update={"max_offset_s": 2.0, "match_share": 1.0, "overlap_share": 0.0})
    return {"default": dedupe.alignment(cfg.dedupe), "old (baseline)": dedupe.alignment(old)}


def measure(root: Path, out: Path) -> dict:
    data = load_config(REPO / "configs/ingest/sample.yaml").model_dump()
    data.update(output=str(out), sources=sources_config(root))
    cfg = IngestConfig.model_validate(data)
    t0 = time.perf_counter()
    recs = [fingerprint_record(probe_record(r, cfg), cfg) for r in list_inputs(cfg)]
    fingerprint_s = time.perf_counter() - t0
    sigs = {str(Path(r.uri).relative_to(root)): signature.from_bytes(r.signature) for r in recs if r.ok}
    planted = json.loads((root / "planted.json").read_text())
    pairs = [(p["copy"], p["original"], p["kind"]) for p in planted["near"]]
    pairs += [(p["copy"], p["original"], "exact") for p in planted["exact"]]
    pairs += [(p["train"], p["val"], "leak") for p in planted["leaks"]]
    aligns = alignments(cfg)
    copies = []
    for copy, orig, kind in pairs:
        row = {"kind": kind, "copy": copy}
        for name, a in aligns.items():
            row[name] = round(signature.distance(sigs[copy], sigs[orig], **a), 4)
        copies.append(row)
    copy_names = {c for c, _, _ in pairs}
    names = sorted(n for n in sigs if n not in copy_names)
    padded, lens = signature.pad([sigs[n] for n in names], cfg.dedupe.max_samples)
    i, j = np.triu_indices(len(names), 1)
    closest = {}
    for name, a in aligns.items():
        d = np.concatenate([signature.batch_distance(padded[i[s:s + 20_000]], lens[i[s:s + 20_000]],
                                                     padded[j[s:s + 20_000]], lens[j[s:s + 20_000]], **a)
                            for s in range(0, len(i), 20_000)])  # in chunks: (pairs, K, L, D) int16 temporaries
        k = int(np.argmin(d))
        closest[name] = {"distance": round(float(d[k]), 4), "a": names[i[k]], "b": names[j[k]],
                         "below_threshold": int((d <= cfg.dedupe.threshold).sum())}  # fmt: skip
    return {"inputs": len(recs), "fingerprinted": len(sigs), "distinct": len(names), "pairs": int(len(i)),
            "threshold": cfg.dedupe.threshold, "fingerprint_s": round(fingerprint_s, 1), "copies": copies,
            "closest_distinct": closest}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dedupe-") as tmp:
        generate(Path(tmp) / "sample", args.preset, seed=args.seed)
        res = measure(Path(tmp) / "sample", Path(tmp) / "out")
    res["preset"] = args.preset
    names = list(res["copies"][0])[2:]  # the alignments, in order
    print(f"planted copies, preset {args.preset} ({res['inputs']} inputs; sample threshold {res['threshold']})")
    w = max(len(r["kind"]) for r in res["copies"])
    print(f"{'kind':<{w}}  " + "  ".join(f"{n:>15}" for n in names) + "  copy")
    for r in res["copies"]:
        print(f"{r['kind']:<{w}}  " + "  ".join(f"{r[n]:>15.4f}" for n in names) + f"  {r['copy']}")
    print(f"closest distinct pair ({res['distinct']} videos, {res['pairs']} pairs)")
    for n, c in res["closest_distinct"].items():
        print(f"  {n:<15} {c['distance']:.4f}  ({c['below_threshold']} pairs at or below the threshold)  "
              f"{c['a']} / {c['b']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
