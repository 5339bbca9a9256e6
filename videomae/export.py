"""Models out: any model `videomae.load_model` reads, written for the tools around it.

    python -m videomae.export MODEL --format hf|reference|onnx --out DIR [--labels FILE] [--wrapper module] [--fp16]

or `export_model(MODEL, fmt, DIR)`. MODEL is a path or URI `load_model` reads, or a model object. The formats
(`FORMATS`):

- `hf`: a `transformers` directory, the kind's class from `MODEL_KINDS` (`videomae/export_hf.py`);
- `reference`: `model.pth`, the weights under `model` (or `module`) with the key layout of OpenGVLab/VideoMAEv2's
  `PretrainVisionTransformer` / `VisionTransformer` (ours: the kind's `reference_prefix` is the only change), as its
  scripts save and load them (`torch.load(...)["model"]`, `load_state_dict`);
- `onnx`: `model.onnx`, pooled features (and logits where the kind has a head), dynamic batch (`export_onnx.py`).

Each writes a model card, `README.md`: the model, where it came from (the run's resolved config and its last
metrics when MODEL is a run's model directory), the config, what the format could not hold, and how to load it.
What a format cannot hold is refused (`ExportError` naming the field) or said in one line (`Exported.notes`, also
printed and in the card).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from videomae import storage
from videomae.checkpoint import REFERENCE_CONFIG_KEY, REFERENCE_FILE, load_model
from videomae.export_hf import ExportError, write_hf
from videomae.export_onnx import ONNX_FILE, OPSET, output_names, write_onnx
from videomae.model import MODEL_KINDS, ModelKind, model_kind
from videomae.modeldir import MODEL_SUBDIR

log = logging.getLogger(__name__)

WRAPPERS = ("model", "module")  # what the reference's scripts save their weights under (module: DeepSpeed)
CARD = "README.md"


@dataclass(frozen=True)
class Options:
    labels: dict[int, str] | None = None  # class names for a classifier (HF's id2label)
    wrapper: str = "model"
    fp16: bool = False
    opset: int = OPSET


def _hf(model: torch.nn.Module, kind: ModelKind, out: Path, opts: Options) -> list[str]:
    notes = write_hf(model, kind, out, opts.labels)
    if kind.head and opts.labels is None:
        notes.append("labels: no class names given (--labels, or a run whose labels.json is reachable): id2label is "
                     "LABEL_0, LABEL_1, ...")
    return notes


def _reference(model: torch.nn.Module, kind: ModelKind, out: Path, opts: Options) -> list[str]:
    if opts.wrapper not in WRAPPERS:
        raise ExportError(f"wrapper {opts.wrapper!r}: the reference loads weights under {' or '.join(WRAPPERS)}")
    state = {kind.reference_prefix + k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    # Our config rides along for videomae.load_model; the reference reads only the weights' key.
    torch.save({opts.wrapper: state, REFERENCE_CONFIG_KEY: model.cfg.to_json_dict()}, out / REFERENCE_FILE)
    return []


def _onnx(model: torch.nn.Module, kind: ModelKind, out: Path, opts: Options) -> list[str]:
    return write_onnx(model, kind, model_kind(model), out, fp16=opts.fp16, opset=opts.opset)


def _load_hf(kind: ModelKind, opts: Options) -> str:
    return (f"import transformers\nmodel = transformers.{kind.hugging_face_class}.from_pretrained(DIR)\n"
            "out = model(pixel_values)  # (B, T, 3, H, W): our clip (B, 3, T, H, W) .permute(0, 2, 1, 3, 4)")


def _load_reference(kind: ModelKind, opts: Options) -> str:
    what = ("its PretrainVisionTransformer" if kind.decoder else
            "its VisionTransformer" if kind.head else
            "its pre-training encoder, or the fine-tuning init (run_class_finetuning.py strips `encoder.`)")
    return (f"# OpenGVLab/VideoMAEv2, {what}:\nstate = torch.load(DIR + '/{REFERENCE_FILE}', map_location='cpu')"
            f"['{opts.wrapper}']\nmodel.load_state_dict(state{'' if kind.reference_prefix else ', strict=True'})")


def _load_onnx(kind: ModelKind, opts: Options) -> str:
    dtype = "float16" if opts.fp16 else "float32"
    return (f"import onnxruntime\nsession = onnxruntime.InferenceSession(DIR + '/{ONNX_FILE}')\n"
            f"{', '.join(output_names(kind))} = session.run(None, {{'clip': clip.astype('{dtype}')}})"
            "  # clip (B, 3, T, H, W)")


@dataclass(frozen=True)
class Format:
    write: Callable[[torch.nn.Module, ModelKind, Path, Options], list[str]]
    files: str
    load: Callable[[ModelKind, Options], str]  # how to load it, for the card
    round_trips: bool  # videomae.load_model reads it back


FORMATS: dict[str, Format] = {
    "hf": Format(_hf, "config.json, model.safetensors", _load_hf, round_trips=True),
    "reference": Format(_reference, REFERENCE_FILE, _load_reference, round_trips=True),
    "onnx": Format(_onnx, ONNX_FILE, _load_onnx, round_trips=False),
}


@dataclass
class Exported:
    path: Path | str
    format: str
    kind: str
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- where it came from
def run_record(source: Any) -> dict[str, Any]:
    """What the run that made a local model directory recorded: its resolved config (config.yaml) and last logged
    metrics (metrics.jsonl), from the run directory holding it as `model/` (or given itself). Empty when none."""
    if not isinstance(source, (str, Path)) or not storage.is_local(os.fspath(source)):
        return {}
    path = storage.local_path(os.fspath(source))
    run = path.parent if path.name == MODEL_SUBDIR else path
    record: dict[str, Any] = {}
    if (run / "config.yaml").is_file():
        record["config"] = yaml.safe_load((run / "config.yaml").read_text())
    lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").is_file() else []
    if lines:
        record["metrics"] = json.loads(lines[-1])
    return record


def run_labels(record: dict[str, Any], num_classes: int) -> dict[int, str] | None:
    """Class names from the run's dataset labels.json (the merged names, or its target source's classes)."""
    from videomae.shards import read_labels

    cfg = record.get("config") or {}
    data = cfg.get("data") or {}
    path = data.get("path") or (data.get("paths") or [None])[0]
    if not path:
        return None
    try:
        labels = read_labels(path[0] if isinstance(path, list) else path, data.get("storage_options"))
    except (OSError, ValueError) as e:
        log.warning("class names: cannot read labels.json of %s (%s)", path, e)
        return None
    names = labels["sources"][cfg["target_source"]]["classes"] if cfg.get("target_source") else labels["names"]
    return dict(enumerate(names)) if len(names) == num_classes else None


def read_label_file(path: str | Path) -> dict[int, str]:
    """labels.json (its merged `names`), a JSON list, or a text file of one name per line."""
    text = Path(path).read_text()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return dict(enumerate(line.strip() for line in text.splitlines() if line.strip()))
    names = obj["names"] if isinstance(obj, dict) else obj
    return dict(enumerate(str(n) for n in names))


# ---------------------------------------------------------------------------------------------------- the card
def model_card(model: torch.nn.Module, kind_name: str, fmt: str, source: Any, record: dict, notes: list[str],
               opts: Options) -> str:
    kind, spec = MODEL_KINDS[kind_name], FORMATS[fmt]
    cfg = model.cfg
    lines = [f"# VideoMAE V2 {cfg.preset or 'custom'} ({kind_name}), exported as {fmt}", "",
             f"- model kind: `{kind_name}` (serves: {', '.join(kind.serves)}); Hugging Face class: "
             f"`{kind.hugging_face_class}`", f"- from: `{source if isinstance(source, (str, Path)) else 'a model'}`",
             f"- files: {spec.files}" + (f" (opset {opts.opset}, {'fp16' if opts.fp16 else 'fp32'})"
                                         if fmt == "onnx" else ""),
             f"- parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M", ""]
    run_cfg = record.get("config") or {}
    if run_cfg:
        data = run_cfg.get("data") or {}
        lines += ["## Training", "", f"- run: `{(run_cfg.get('run') or {}).get('name')}`",
                  f"- data: `{data.get('path') or data.get('paths')}` (split `{data.get('split')}`)",
                  f"- initialised from: `{(run_cfg.get('model') or {}).get('init_from')}`", ""]
    if record.get("metrics"):
        lines += ["## Metrics (the run's last logged step)", "", "```json", json.dumps(record["metrics"], indent=1),
                  "```", ""]
    lines += ["## Config", "", "```json", json.dumps(cfg.to_json_dict(), indent=1), "```", ""]
    if notes:
        lines += ["## What this format holds differently", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["## Load", "", "```python", spec.load(kind, opts), "```", ""]
    if spec.round_trips:
        lines += ["Or with this project: `videomae.load_model(DIR)` (the same weights, bit for bit).", ""]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------- entry point
def export_model(source: Any, fmt: str, out: str | Path, *, labels: dict[int, str] | list[str] | None = None,
                 wrapper: str = "model", fp16: bool = False, opset: int = OPSET, preset: str | None = None,
                 storage_options: storage.Options = None) -> Exported:
    """Write the model at `source` (anything `load_model` reads, or a model) as format `fmt` (a key of `FORMATS`)
    into the directory `out`, a path or URI, with its model card. `labels`: a classifier's class names (default: the
    run's labels.json when `source` is a run's model)."""
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: formats are {', '.join(FORMATS)}")
    if fp16 and fmt != "onnx":
        raise ExportError(f"fp16: only onnx is exported in fp16 ({fmt} keeps the weights as they are)")
    model = source if isinstance(source, torch.nn.Module) else load_model(source, preset,
                                                                          storage_options=storage_options)
    kind_name = model_kind(model)
    record = run_record(source)
    if isinstance(labels, list):
        labels = dict(enumerate(labels))
    if labels is None and MODEL_KINDS[kind_name].head:
        labels = run_labels(record, model.cfg.num_classes)
    if labels is not None and len(labels) != model.cfg.num_classes:
        raise ExportError(f"labels: {len(labels)} names for a head of {model.cfg.num_classes} classes")
    opts = Options(labels=labels, wrapper=wrapper, fp16=fp16, opset=opset)
    text = os.fspath(out)
    with tempfile.TemporaryDirectory(prefix="videomae-export-") as tmp:  # a refusal leaves nothing at `out`
        notes = FORMATS[fmt].write(model, MODEL_KINDS[kind_name], Path(tmp), opts)
        (Path(tmp) / CARD).write_text(model_card(model, kind_name, fmt, source, record, notes, opts))
        if storage.is_local(text):
            dest = storage.local_path(text)
            dest.mkdir(parents=True, exist_ok=True)
            for f in Path(tmp).iterdir():
                shutil.move(f, dest / f.name)
        else:
            dest = text
            storage.copy_files(tmp, text, dst_options=storage_options)
    for note in notes:
        log.warning("%s export: %s", fmt, note)
    return Exported(dest, fmt, kind_name, notes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m videomae.export", description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="our model directory, a run directory, a reference .pth or a HF directory; or URI")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument("--out", required=True, help="the directory to write (a path or URI)")
    p.add_argument("--labels", help="class names: labels.json, a JSON list or one name per line (classifiers)")
    p.add_argument("--wrapper", default="model", choices=WRAPPERS, help="reference: the key the weights go under")
    p.add_argument("--fp16", action="store_true", help="onnx: weights and graph in float16")
    p.add_argument("--opset", type=int, default=OPSET, help="onnx: the opset")
    p.add_argument("--preset", help="a reference .pth's preset, when its width does not tell it")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")  # the notes; not the exporters' info lines
    try:
        done = export_model(a.model, a.format, a.out, labels=read_label_file(a.labels) if a.labels else None,
                            wrapper=a.wrapper, fp16=a.fp16, opset=a.opset, preset=a.preset)
    except (ExportError, FileNotFoundError) as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    print(f"wrote {done.format} export of a {done.kind} model to {done.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
