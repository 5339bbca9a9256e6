"""The quick start: videos -> ingest -> pre-training that visibly learns -> a served model and index, on this machine,
with the commands users run.

    python scripts/demo.py                 # configs/demo/quickstart.yaml, what `make demo` runs (under 10 min, 2 cores)
    python scripts/demo.py --quick         # configs/demo/quick.yaml: the same path, shortened (the test runs it)
    python scripts/demo.py --config FILE [--out DIR] [--serve]

Stages, each through its public entry point as a subprocess (so the demo exercises exactly what users run):
  1. videos     python -m ingest.objects_data   flat-coloured sprite swarms in 8 motion classes (the data-efficiency
                                                experiment's look, configs/experiments/full.yaml), fewer videos
  2. ingest     python -m ingest --config <data>/ingest.yaml
  3. pretrain   python trainer/pretrain.py      the experiment's recipe (configs/pretrain/objects.yaml: nano, patch 8,
                                                tube 0.9 + running cell 0.5), most of the demo's time; its monitor
                                                scores held-out reconstruction and a k-NN probe as it goes
  4. extract    python trainer/extract.py       clip features of the shards with the pre-trained model
  5. index      python trainer/search.py build  the nearest-clip index over them
  6. serve      python -m api                   /embed, /reconstruct and /search on a video the demo made
  7. report     <out>/report.md, summary.json, loss_curve.png, learning.png, reconstruction*.png; the random
                encoder (the run's own initial weights) scored by the same monitor, in this process
What the README's next commands use is where they look: <out>/pretrain/model, <out>/index, <out>/example.mp4.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import demo_report
import stages
from pydantic import Field
from stages import ROOT, Stage, StageConfig, set_args

log = logging.getLogger("demo")

# Lines of the services' logs worth showing while a stage runs (everything goes to <out>/logs/<stage>.log).
# (Ray's own worker noise is left in the log: a failing stage prints its log's tail instead.)
PROGRESS = re.compile(r"\[train \d+/\d+|rendered \d+/\d+ videos|wrote \d+ files|ingest\.pipeline |INFO trainer: "
                      r"|^invalid config")


# ---------------------------------------------------------------------------------------------- config
class Videos(stages.Strict):
    """`python -m ingest.objects_data` arguments."""

    seed: int = 0
    train_per_class: int = Field(12, ge=1)  # labeled videos: the probe's training set (labels unused in pre-training)
    val_per_class: int = Field(8, ge=1)  # held-out videos: the monitor's reconstruction and probe test set
    unlabeled: int = Field(160, ge=0)  # the pre-training pool, with the labeled train videos
    look: dict = Field(default_factory=dict)  # ingest.objects_data.Look fields

    def command(self, out: Path) -> list[str]:
        return [sys.executable, "-m", "ingest.objects_data", str(out), "--seed", str(self.seed),
                "--train-per-class", str(self.train_per_class), "--val-per-class", str(self.val_per_class),
                "--unlabeled", str(self.unlabeled), "--look", json.dumps(self.look)]


class DemoConfig(stages.Strict):
    out: str = "runs/demo"
    videos: Videos = Field(default_factory=Videos)
    ingest: list[str] = Field(default_factory=list)  # `--set`s for python -m ingest
    pretrain: StageConfig
    extract: StageConfig
    api_timeout_s: float = Field(180.0, gt=0)
    source: str = ""  # the YAML it came from (set by load_config), for the report

    @property
    def out_dir(self) -> Path:  # `out`; a relative one is under the repository root
        return Path(self.out) if Path(self.out).is_absolute() else (ROOT / self.out).resolve()


def load_config(path: str | Path, out: str | None = None) -> DemoConfig:
    cfg = stages.load_yaml_config(DemoConfig, path, out, "demo config")
    path = Path(path).resolve()
    return cfg.model_copy(update={"source": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)})


def validate_stage_configs(cfg: DemoConfig) -> None:
    """Load each stage's YAML with its `--set`s through the service's own loader, as its CLI will."""
    from ingest.objects_data import look_from_json
    from trainer.config import load_config as load_trainer
    from trainer.extraction.config import load_config as load_extract

    look_from_json(json.dumps(cfg.videos.look))
    load_trainer("pretrain", ROOT / cfg.pretrain.config, cfg.pretrain.set)
    load_extract(str(ROOT / cfg.extract.config), cfg.extract.set)


# ---------------------------------------------------------------------------------------------- stages
def progress_text(line: str) -> str | None:
    """The informative part of a progress line: from the trainer's `[train i/n ...]` tag or after the logger's name."""
    if not PROGRESS.search(line):
        return None
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line).rstrip()
    for marker in ("[train ", "INFO trainer: ", "ingest.pipeline "):
        if marker in text:
            text = text[text.index(marker):].removeprefix("INFO trainer: ").removeprefix("ingest.pipeline ")
            break
    return text if len(text) <= 140 else text[:137] + "..."


@dataclass(frozen=True)
class Layout:
    """Where the demo writes (under `out`); the README's commands after `make demo` use these paths."""

    out: Path
    data: Path  # the generated videos and their ingest.yaml
    shards: Path
    run: Path  # the pre-training run (metrics.jsonl, monitor/ pictures)
    model: Path  # what `python -m api` serves (VIDEOMAE_MODEL)
    features: Path
    index: Path  # VIDEOMAE_INDEX
    example: Path  # a held-out video the README's curl commands upload

    @classmethod
    def under(cls, out: Path) -> Layout:
        return cls(out, out / "data", out / "shards", out / "pretrain", out / "pretrain" / "model", out / "features",
                   out / "index", out / "example.mp4")


def pretrain_sets(cfg: DemoConfig, where: Layout) -> list[str]:
    return [f"data.path={where.shards}", f"run.storage_path={where.out}", "run.name=pretrain", *cfg.pretrain.set]


def stage_list(cfg: DemoConfig, where: Layout) -> list[Stage]:
    """The service commands, in order: videos, ingest, pre-train, features, index."""
    ingest = [sys.executable, "-m", "ingest", "--config", str(where.data / "ingest.yaml"),
              *set_args([f"output={where.shards}", *cfg.ingest])]
    pretrain = [sys.executable, "trainer/pretrain.py", "--config", cfg.pretrain.config,
                *set_args(pretrain_sets(cfg, where))]
    extract = [sys.executable, "trainer/extract.py", "--config", cfg.extract.config, "--no-ray",
               *set_args([f"input.path={where.shards}", f"output={where.features}", f"model.source={where.model}",
                          *cfg.extract.set])]
    index = [sys.executable, "trainer/search.py", "build", "--features", str(where.features), "--index",
             str(where.index)]
    return [
        Stage("videos", cfg.videos.command(where.data),
              what="flat-coloured sprite swarms in 8 motion classes (python -m ingest.objects_data)"),
        Stage("ingest", ingest, what="probe, fingerprint, de-duplicate, cut clips into Parquet shards"),
        Stage("pretrain", pretrain, what="masked video pre-training with dual masking (tube encoder mask, running-cell "
                                         "decoder mask); held-out checks as it goes"),
        Stage("extract", extract, what="clip features of the shards with the pre-trained encoder"),
        Stage("index", index, what="the nearest-clip index over those features"),
    ]


# ---------------------------------------------------------------------------------------------- serving
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_and_call(cfg: DemoConfig, runner: stages.Runner, where: Layout, keep_serving: bool) -> dict:
    """Start `python -m api` with the demo's model and index on a free loopback port with a fresh API key, call
    /embed, /reconstruct and /search on the example video, stop it (unless --serve)."""
    import httpx

    runner.header("serve", f"python -m api with {where.model} and {where.index}, then /embed, /reconstruct, /search")
    port, key = free_port(), secrets.token_hex(24)
    env = {**os.environ, "VIDEOMAE_MODEL": str(where.model), "VIDEOMAE_INDEX": str(where.index),
           "VIDEOMAE_PORT": str(port), "VIDEOMAE_HOST": "127.0.0.1", "VIDEOMAE_API_KEYS": key, "PYTHONPATH": str(ROOT)}
    logfile = (where.out / "logs" / "api.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=logfile,
                              stderr=subprocess.STDOUT)
    base, start = f"http://127.0.0.1:{port}", time.perf_counter()
    try:
        wait_ready(base, server, cfg.api_timeout_s, where.out / "logs" / "api.log")
        log.info("      api ready at %s in %.0f s", base, time.perf_counter() - start)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300) as client:
            calls = demo_report.call_api(client, where.example, where.out)
        log.info("      /embed %s: dim %d, %d clip(s)", where.example.name, calls["embed"]["dim"],
                 calls["embed"]["clips"])
        log.info("      /reconstruct: %s (loss %.4f)", calls["reconstruct"]["png"], calls["reconstruct"]["loss"])
        log.info("      /search: nearest %s", ", ".join(f"{r['label']} ({r['score']:.2f})"
                                                         for r in calls["search"]["results"]))
        runner.timings["serve"] = time.perf_counter() - start
        if keep_serving:
            log.info("serving at %s (API key in %s); Ctrl-C to stop", base, where.out / "api_key")
            (where.out / "api_key").write_text(key + "\n")
            server.wait()
        return calls
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        logfile.close()


def wait_ready(base: str, server: subprocess.Popen, timeout_s: float, logfile: Path) -> None:
    import httpx

    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the API exited ({server.returncode}); see {logfile}:\n{logfile.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"the API was not ready after {timeout_s:.0f} s; see {logfile}")


# ---------------------------------------------------------------------------------------------- main
OUTPUTS = ("data", "shards", "pretrain", "features", "index", "logs", "example.mp4", "report.md", "summary.json",
           "loss_curve.png", "learning.png", "reconstruction.png", "reconstruction_early.png",
           "reconstruction_late.png", "api_key")


def clear_previous(out: Path) -> None:
    """A re-run starts fresh: the same run.name + storage_path would otherwise resume the finished training run.
    Only what the demo writes is removed, never other files in the directory."""
    import shutil

    old = [out / name for name in OUTPUTS if (out / name).exists()]
    if old:
        log.info("removing the previous demo outputs in %s", out)
    for path in old:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def run_demo(cfg: DemoConfig, keep_serving: bool = False) -> dict:
    import shutil

    out = cfg.out_dir
    clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    where = Layout.under(out)
    runner = stages.Runner(out, total=7, progress=progress_text)
    log.info("VideoMAE V2 quick start -> %s", out)

    cpu: dict[str, float] = {}  # CPU seconds of each stage's processes (what a busy machine does not inflate)
    for stage in stage_list(cfg, where):
        cpu[stage.name] = runner.run(stage)["children_cpu_s"]
        if stage.name == "ingest":
            shutil.copyfile(demo_report.pick_video(where.data), where.example)
    calls = serve_and_call(cfg, runner, where, keep_serving)

    runner.header("report", "the random encoder through the same monitor; report.md, summary.json, pictures")
    start = time.perf_counter()
    random_init = demo_report.random_encoder_check(cfg.pretrain.config, pretrain_sets(cfg, where))
    runner.timings["report"] = time.perf_counter() - start
    summary = demo_report.write_report(where, calls, random_init, runner.timings, cpu, config=cfg.source)
    pre = summary["pretrain"]
    log.info("      held-out reconstruction loss %.3f (random encoder) -> %.3f (step %d); predicting nothing %.3f",
             pre["random"]["heldout_loss"], pre["last_check"]["heldout_loss"], pre["steps"],
             pre["last_check"]["heldout_loss_zero"])
    log.info("      k-NN probe top-1 %.1f%% (random encoder %.1f%%, chance %.1f%%)",
             100 * pre["last_check"]["probe_top1"], 100 * pre["random"]["probe_top1"], 100 * pre["chance"])
    log.info("done in %.0f s: %s", time.perf_counter() - runner.t0, out / "report.md")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = stages.command_line(__doc__.splitlines()[0], "demo", "quickstart.yaml")
    ap.add_argument("--serve", action="store_true", help="keep the API running at the end (Ctrl-C stops it)")
    ap.add_argument("--numbers", type=Path, metavar="SUMMARY",
                    help="print docs/quickstart.md's figures from a demo's summary.json, and exit")
    args = ap.parse_args(argv)
    if args.numbers:
        print(demo_report.numbers_block(json.loads(args.numbers.read_text())))
        return 0
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise next to the stage lines
    cfg = load_config(args.config, args.out)
    if args.validate:
        validate_stage_configs(cfg)
        log.info("%s: ok", args.config)
        return 0
    run_demo(cfg, keep_serving=args.serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
