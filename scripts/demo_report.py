"""The quick start's API calls, its random-encoder check and its report (scripts/demo.py drives; this module reads
what the stages wrote).

Inputs it reads: the shards' manifest.json (ingest), the pre-training run's metrics.jsonl (the training loss and the
monitor's checks: trainer/monitor.py) and its monitor/step_*.png pictures, and the API's answers. Outputs under the
demo's directory: summary.json (everything below, machine-readable), report.md, loss_curve.png, learning.png,
reconstruction.png (the API's), reconstruction_early.png and reconstruction_late.png (the monitor's, first and last
check).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
from stages import ROOT  # noqa: E402

from videomae.pictures import LEGEND  # noqa: E402


# ---------------------------------------------------------------------------------------------- inputs
def pick_video(data: Path) -> Path:
    """A held-out labeled video (the first val video of the first class): the one the README's commands upload."""
    with (data / "labeled.csv").open() as fh:
        val = [row["uri"] for row in csv.DictReader(fh) if row["split"] == "val"]
    return data / val[0]


# ---------------------------------------------------------------------------------------------- API calls
def call_api(client, video: Path, out: Path) -> dict:
    """POST the video to /embed, /reconstruct (PNG) and /search, as the README's curl commands do."""
    def post(path: str, **params):
        with video.open("rb") as fh:
            r = client.post(path, params=params, files={"file": (video.name, fh, "video/mp4")})
        r.raise_for_status()
        return r

    body = post("/embed").json()
    embed = {"video": video.name, "dim": body["dim"], "clips": len(body["clips"]), "num_frames": body["num_frames"]}
    r = post("/reconstruct")
    assert r.headers["content-type"] == "image/png", r.headers["content-type"]
    png = out / "reconstruction.png"
    png.write_bytes(r.content)
    found = post("/search", k=5).json()
    models = client.get("/v1/models").json()
    return {"embed": embed, "models": models,
            "reconstruct": {"png": png.name, "video": video.name, "bytes": len(r.content),
                            "loss": float(r.headers["X-Reconstruction-Loss"]),
                            "psnr": float(r.headers["X-Reconstruction-PSNR"])},
            "search": {"results": [{k: hit[k] for k in ("uri", "label", "score")} for hit in found["results"]],
                       "index_size": found["index_size"]}}


# ---------------------------------------------------------------------------------------------- random encoder
def random_encoder_check(config: str, sets: list[str]) -> dict[str, float]:
    """The run's own initial weights (the same config and seed, as the trainer draws them) through the same monitor:
    held-out reconstruction loss, predicting nothing, the k-NN probe; its picture is the run's monitor/ step 0."""
    import torch

    from trainer.config import load_config
    from trainer.monitor import Monitor
    from videomae.model import VideoMAEPretrain

    cfg = load_config("pretrain", ROOT / config, sets)
    torch.manual_seed(cfg.run.seed)  # as trainer/loop.py before make_task: the run's step-0 weights
    model = VideoMAEPretrain(cfg.model.architecture())
    return Monitor(cfg, model.cfg).check(model, 0, torch.device("cpu"), 0)


# ---------------------------------------------------------------------------------------------- summary
def summarise(where, calls: dict, random_init: dict, timings: dict[str, float], cpu: dict[str, float]) -> dict:
    from trainer.metrics import read_metrics

    manifest = json.loads((where.shards / "manifest.json").read_text())
    labels = json.loads((where.shards / "labels.json").read_text())
    rows = read_metrics(str(where.run))
    losses = [r for r in rows if "loss" in r]
    checks = [r for r in rows if "heldout_loss" in r]
    assert losses and checks, "the pre-training run logged no losses or no monitor checks"
    keys = ("heldout_loss", "heldout_loss_zero", "probe_top1")
    last = {k: checks[-1].get(k) for k in keys}
    return {
        "ingest": {"counts": manifest["counts"], "clips": manifest["clips"], "elapsed_s": manifest.get("elapsed_s")},
        "pretrain": {"steps": losses[-1]["step"], "epochs": losses[-1].get("epoch"), "first_loss": losses[0]["loss"],
                     "last_loss": losses[-1]["loss"], "curve": [[r["step"], r["loss"]] for r in losses],
                     "checks": [{"step": 0, **{k: random_init.get(k) for k in keys}},
                                *({"step": r["step"], **{k: r.get(k) for k in keys}} for r in checks)],
                     "random": {k: random_init.get(k) for k in keys}, "last_check": last,
                     "num_classes": len(labels["names"]), "chance": 1.0 / len(labels["names"])},
        "api": calls,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "total_s": round(sum(timings.values()), 1),
        "stage_cpu_s": {k: round(v, 1) for k, v in cpu.items()},  # the subprocess stages' CPU time (user + system)
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "outputs": {"report": "report.md", "summary": "summary.json", "loss_curve": "loss_curve.png",
                    "learning": "learning.png", "reconstruction": "reconstruction.png",
                    "reconstruction_early": "reconstruction_early.png",
                    "reconstruction_late": "reconstruction_late.png", "model": str(where.model),
                    "index": str(where.index), "example": str(where.example), "shards": str(where.shards)},
    }


def plot_losses(pre: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps, losses = zip(*pre["curve"], strict=True)
    ax.plot(steps, losses, marker=".")
    ax.set(title="pre-training loss (dual masking; each step on its own decoded tokens)", xlabel="step",
           ylabel="MSE, per-cube normalised pixels")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning(pre: dict, path: Path) -> None:
    """Held-out reconstruction loss against predicting nothing, and the k-NN probe against chance, per check."""
    checks = pre["checks"]
    steps = [c["step"] for c in checks]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(steps, [c["heldout_loss"] for c in checks], marker="o", label="the model")
    a.plot(steps, [c["heldout_loss_zero"] for c in checks], ls="--", color="grey", label="predicting nothing")
    a.set(title="held-out reconstruction loss (step 0 = random encoder)", xlabel="step", ylabel="MSE, hidden cubes")
    probes = [(s, c["probe_top1"]) for s, c in zip(steps, checks, strict=True) if c["probe_top1"] is not None]
    if probes:
        b.plot(*zip(*probes, strict=True), marker="o", color="tab:green", label="k-NN probe, frozen features")
    b.axhline(pre["chance"], ls="--", color="grey", label="chance")
    b.set(title="k-NN probe on held-out videos (step 0 = random encoder)", xlabel="step", ylabel="top-1")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def copy_pictures(where) -> None:
    """The monitor's first picture (step 0: the random encoder) and its last, as reconstruction_early/late.png."""
    pictures = sorted((where.run / "monitor").glob("step_*.png"))
    assert len(pictures) >= 2, pictures
    shutil.copyfile(pictures[0], where.out / "reconstruction_early.png")
    shutil.copyfile(pictures[-1], where.out / "reconstruction_late.png")


def write_report(where, calls: dict, random_init: dict, timings: dict[str, float], cpu: dict[str, float],
                 config: str = "") -> dict:
    summary = {"config": config, **summarise(where, calls, random_init, timings, cpu)}
    (where.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_losses(summary["pretrain"], where.out / "loss_curve.png")
    plot_learning(summary["pretrain"], where.out / "learning.png")
    copy_pictures(where)
    (where.out / "report.md").write_text(render(summary))
    return summary


def ingest_line(ingest: dict) -> str:
    t = ingest["counts"]["total"]
    return f"{t['seen']} videos seen, {t['kept']} kept, {t['clips']} clips"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def render(s: dict) -> str:
    pre, rec, out = s["pretrain"], s["api"]["reconstruct"], s["outputs"]
    checks = "\n".join(f"| {c['step']}{' (random encoder)' if i == 0 else ''} | {c['heldout_loss']:.4f} | "
                       f"{c['heldout_loss_zero']:.4f} | {_pct(c['probe_top1'])} |"
                       for i, c in enumerate(pre["checks"]))
    legend = "\n".join(f"{i + 1}. **{name}**: {text}" for i, (name, text) in enumerate(LEGEND.items()))
    hits = "\n".join(f"| `{h['uri']}` | {h['label']} | {h['score']:.3f} |" for h in s["api"]["search"]["results"])
    cpu = s["stage_cpu_s"]
    stages = "\n".join(f"| {k} | {v:.0f} | {f'{cpu[k]:.0f}' if k in cpu else ''} |" for k, v in s["timings_s"].items())
    return f"""# VideoMAE V2 quick start report

Videos -> ingest -> pre-training with dual masking -> features and an index -> the API, on {s['machine']['cpus']}
CPU cores ({s['machine']['platform']}, Python {s['machine']['python']}), in {s['total_s']:.0f} s.

## Data

`python -m ingest.objects_data`: flat-coloured sprite swarms in {pre['num_classes']} motion classes (the
data-efficiency experiment's look); ingest: {ingest_line(s['ingest'])}.

## Pre-training: does it learn?

{pre['steps']} steps ({pre['epochs']} epochs) of the nano ViT (patch 8) with tube 0.9 + running-cell 0.5 masking;
training loss {pre['first_loss']:.4f} -> {pre['last_loss']:.4f}. The monitor scores the same held-out clips with
the same fixed masks at every check; step 0 is the run's own initial weights (the random encoder), scored after the
run by the same code. "Predicting nothing" is the loss of an all-zero prediction on those tokens: the line a model
has to get under.

| step | held-out reconstruction loss | predicting nothing | k-NN probe top-1 (chance {_pct(pre['chance'])}) |
|---|---|---|---|
{checks}

![learning](learning.png)

![training loss](loss_curve.png)

### Held-out reconstructions, early and late

The random encoder (step 0), then the last check. Per clip, five rows (a column per tubelet of frames):

{legend}

The third row borrows each hidden cube's true mean and std (as the reference's visualisation does), so it looks
like the clip whatever the model predicts; the fourth and fifth rows carry no statistics of the hidden pixels and
show what the model itself predicts.

Early (random encoder): ![early](reconstruction_early.png)

Late (step {pre['steps']}): ![late](reconstruction_late.png)

## API

`/embed` on `{s['api']['embed']['video']}`: dim {s['api']['embed']['dim']}, {s['api']['embed']['clips']} clip(s).
`/reconstruct`: loss {rec['loss']:.4f} (rows of `reconstruction.png`: original, masked input, reconstruction with the
original's statistics, the prediction alone, the error; docs/api.md). `/search` over the index of
{s['api']['search']['index_size']} clips, nearest first:

| clip's video | label | cosine |
|---|---|---|
{hits}

![reconstruction](reconstruction.png)

Serve them again: `VIDEOMAE_MODEL={out['model']} VIDEOMAE_INDEX={out['index']} .venv/bin/python -m api`.

## Time per stage (seconds)

Wall time, and the CPU time of the stage's processes (user + system, children reaped; on a busy machine the wall
time grows, the CPU time much less).

| stage | wall s | CPU s |
|---|---|---|
{stages}
"""


# ---------------------------------------------------------------------------------------------- docs
NUMBERS_BEGIN = "<!-- demo numbers: generated by python scripts/demo.py --numbers docs/quickstart-summary.json -->"
NUMBERS_END = "<!-- demo numbers: end -->"


def numbers_block(s: dict) -> str:
    """docs/quickstart.md's figures, from a demo's summary.json (the one committed as docs/quickstart-summary.json;
    tests/docs checks the page holds exactly this)."""
    pre = s["pretrain"]
    first, last = pre["random"], pre["last_check"]
    cpu = s.get("stage_cpu_s", {})
    stages = ", ".join(f"{k} {v:.0f} s" + (f" ({cpu[k]:.0f} CPU s)" if k in cpu else "")
                       for k, v in s["timings_s"].items())
    return "\n".join([
        NUMBERS_BEGIN,
        f"| measured ({s.get('config', 'configs/demo/quickstart.yaml')}, {s['machine']['cpus']} cores) | |",
        "|---|---|",
        f"| whole demo | {s['total_s']:.0f} s |",
        f"| stages (wall) | {stages} |",
        f"| pre-training | {pre['steps']} steps ({pre['epochs']} epochs), loss {pre['first_loss']:.3f} -> "
        f"{pre['last_loss']:.3f} |",
        f"| held-out reconstruction loss | {first['heldout_loss']:.3f} random encoder -> {last['heldout_loss']:.3f} "
        f"(predicting nothing {last['heldout_loss_zero']:.3f}) |",
        f"| k-NN probe top-1 | {100 * first['probe_top1']:.1f}% random encoder -> {100 * last['probe_top1']:.1f}% "
        f"(chance {100 * pre['chance']:.1f}%) |",
        NUMBERS_END,
    ])
