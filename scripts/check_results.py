"""Re-check the published result on videos nobody has seen: the published encoder's frozen features against a
random-init encoder's, on a fresh labeled set from the same generator with another seed.

    python scripts/check_results.py --seed 7                  # docs/results: ~5 minutes on 2 cores
    python scripts/check_results.py --seed 7 --results DIR --train-per-class 2 --val-per-class 1   # tiny (tests)

Steps, each the project's own code: `python -m ingest.objects_data` (no unlabeled pool; the look and clip settings
of the published run, read from DIR/results.json) -> `python -m ingest` -> pooled encoder features of every labeled
clip, centre view (as `trainer/evaluate.py` mode probes) -> the linear probe (the published run's epochs and lr)
fit on the fresh train videos and scored on the fresh val videos, for the published encoder (DIR/model) and for a
random-init encoder of the same architecture (torch seed `--seed`). The last line reads
`linear top-1: published P %, random R %`.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a plain file from anywhere: the project's packages sit beside scripts/
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("check_results")


def _run(cmd: list[str]) -> None:
    log.info("$ %s", " ".join(cmd))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")


def probe(model, shards: Path, epochs: int, lr: float, seed: int) -> float:
    import torch

    from trainer.evaluation import ViewSpec, iter_features, linear_probe_accuracy

    arch = model.cfg
    spec = ViewSpec(arch.img_size, arch.num_frames)

    def features(split: str):
        parts = list(iter_features(model, [str(shards)], split, spec, device=torch.device("cpu"), batch_size=64))
        if not parts:
            raise SystemExit(f"no labeled clips in split {split!r} of {shards}")
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    (a, ya), (b, yb) = features("train"), features("val")
    return linear_probe_accuracy(a, ya, b, yb, int(max(ya.max(), yb.max())) + 1, epochs, lr, seed)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True, help="the fresh set's seed (the published run used 0)")
    ap.add_argument("--results", type=Path, default=ROOT / "docs" / "results",
                    help="the published results: results.json and model/")
    ap.add_argument("--train-per-class", type=int, default=None, help="default: as the published run")
    ap.add_argument("--val-per-class", type=int, default=None, help="default: as the published run")
    ap.add_argument("--work", type=Path, default=None, help="folder for the fresh videos and shards (default: temp)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    published = json.loads((args.results / "results.json").read_text())
    config = published["config"]
    data = config["data"]
    if args.seed == data["seed"]:
        raise SystemExit(f"--seed {args.seed} is the published run's own data seed: choose another")
    import torch

    import videomae
    from trainer.config import load_config
    from videomae.model import VideoMAEPretrain

    model = videomae.load_model(str(args.results / "model")).eval()
    torch.manual_seed(args.seed)
    random = VideoMAEPretrain(model.cfg).eval()
    probes = load_config("evaluate", ROOT / config["probes"]["config"],
                         [*config["probes"]["set"], "data.path=x", "run.name=x"])
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        videos, shards = work / "videos", work / "shards"
        train = args.train_per_class or data["train_per_class"]
        val = args.val_per_class or data["val_per_class"]
        _run([sys.executable, "-m", "ingest.objects_data", str(videos), "--seed", str(args.seed), "--unlabeled", "0",
              "--train-per-class", str(train), "--val-per-class", str(val), "--look", json.dumps(data["look"])])
        _run([sys.executable, "-m", "ingest", "--config", str(videos / "ingest.yaml"), "--no-ray",
              *[a for s in [f"output={shards}", *config.get("ingest", [])] for a in ("--set", s)]])
        scores = {name: probe(m, shards, probes.linear_epochs, probes.linear_lr, args.seed)
                  for name, m in (("published", model), ("random", random))}
    log.info("fresh set: seed %d, %d train + %d val videos per class; %.0f s", args.seed, train, val,
             time.perf_counter() - t0)
    print(f"linear top-1: published {100 * scores['published']:.1f} %, random {100 * scores['random']:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
