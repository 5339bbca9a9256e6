"""Our model directory (docs/architecture.md "Model directories and checkpoints"): `config.json` (the model type, the
preset and every architecture field) and `model.safetensors`, written to any location `videomae.storage` reaches.

Writing lives here, apart from `videomae.checkpoint` (which reads every format and builds models), so that the model
classes can offer `model.save(dir)` (`videomae.model.save_model`, which names the model's kind) without the modules
importing each other. A directory may also hold a model directory under `MODEL_SUBDIR`: training checkpoints and run
directories do, and `load_model` looks there.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from videomae import storage

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MODEL_SUBDIR = "model"


def write_model(model: torch.nn.Module, directory: str | Path, kind: str, options: storage.Options = None,
                state: dict[str, torch.Tensor] | None = None) -> Path | str:
    """Write `model`, of kind `kind` (config.json's `model_type`), as our model directory at `directory` (a path or
    URI); returns it. `state`: the weights to write instead of `model.state_dict()`."""
    meta = {"model_type": kind, **model.cfg.to_json_dict()}
    state = model.state_dict() if state is None else state
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    text = str(directory)
    if storage.is_local(text):
        local = storage.local_path(text)
        local.mkdir(parents=True, exist_ok=True)
        _write(local, state, meta, kind)
        return local
    with tempfile.TemporaryDirectory(prefix="videomae-save-") as tmp:
        _write(Path(tmp), state, meta, kind)
        storage.copy_files(tmp, text, dst_options=options)
    return text


def _write(directory: Path, state: dict[str, torch.Tensor], meta: dict, kind: str) -> None:
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt", "model_type": kind})
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
