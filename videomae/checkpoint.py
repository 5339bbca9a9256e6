"""Checkpoint I/O: our model directory, the reference's `.pth` files and Hugging Face VideoMAE weights.

Our format (docs/architecture.md "Model directories and checkpoints"): a directory with `config.json` (the model type,
the preset name and every architecture field) and `model.safetensors`. Foreign formats go through one remapping
function each (`remap_reference`, `remap_hf`) to our key layout, which is the reference's, then load strictly: a
missing or unexpected key is an error naming it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from videomae import storage
from videomae.config import VideoMAEConfig
from videomae.model import MODEL_KINDS, Model, ModelKind, VideoMAEClassifier, model_kind
from videomae.modeldir import CONFIG_FILE, MODEL_SUBDIR, WEIGHTS_FILE
from videomae.presets import list_presets, preset_fields

log = logging.getLogger(__name__)

REFERENCE_FILE = "model.pth"  # the weights file of a reference export (videomae.export), read when given its directory
# What load_model reads from a directory it has to download (a model directory, possibly under MODEL_SUBDIR).
_MODEL_FILES = tuple(f"{sub}{name}" for sub in ("", f"{MODEL_SUBDIR}/")
                     for name in (CONFIG_FILE, WEIGHTS_FILE, "pytorch_model.bin", REFERENCE_FILE))
# Our full config beside a reference export's weights (the reference's scripts read only the weights' key): what the
# shapes cannot tell (clip size, heads, eps) comes back exactly.
REFERENCE_CONFIG_KEY = "videomae_config"
_WRAPPER_KEYS = ("model", "module", "state_dict", "model_state")
_PREFIXES = ("_orig_mod.", "module.", "backbone.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into the requested model; the message names the keys involved."""


# ----------------------------------------------------------------------------------------------- the kinds
def recognise(keys, fmt: str) -> str:
    """The kind (`videomae.model.MODEL_KINDS`) whose weights these are, in format `fmt`: "reference" (the reference's
    key layout, which is ours) or "hugging_face"."""
    keys = set(keys)
    found = [name for name, kind in MODEL_KINDS.items() if getattr(kind, f"in_{fmt}")(keys)]
    if len(found) != 1:
        raise CheckpointError(f"the weights look like {' and '.join(found) or 'none'} of the model kinds "
                              f"({', '.join(MODEL_KINDS)})")
    return found[0]


def _kind(name: str) -> ModelKind:
    if name not in MODEL_KINDS:
        raise CheckpointError(f"model_type {name!r} is not a model kind; known: {', '.join(MODEL_KINDS)}")
    return MODEL_KINDS[name]


def load_strict(model: Model, state: Mapping[str, torch.Tensor], *, allow_missing: tuple[str, ...] = (),
                allow_unexpected: tuple[str, ...] = (), source: str = "checkpoint") -> Model:
    """Load `state` into `model`; fail with the missing/unexpected/mis-shaped key names unless allowed by prefix."""
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state and not k.startswith(allow_missing))
    unexpected = sorted(k for k in state if k not in own and not k.startswith(allow_unexpected))
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape))
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_preview(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_preview(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {_preview(shapes)}")
        raise CheckpointError(f"{source} does not fit the model ({model.cfg.preset or 'custom'}): " + "; ".join(parts))
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return model


def _preview(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... (+{len(keys) - limit} more)" if len(keys) > limit else "")


# ------------------------------------------------------------------------------------------ the reference's .pth
def read_torch_file(path: Path) -> dict[str, Any]:
    # weights_only keeps pickle from running code; the reference saves its argparse Namespace beside the weights.
    torch.serialization.add_safe_globals([argparse.Namespace])
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle.UnpicklingError, RuntimeError (not a zip/pickle), EOFError (empty)...
        why = (str(e).splitlines() or ["empty file"])[0][:200]
        raise CheckpointError(
            f"{path}: not a checkpoint this loader reads ({type(e).__name__}: {why}). "
            "Give our model directory (config.json + model.safetensors), a training checkpoint or run directory "
            "holding one under model/, a Hugging Face VideoMAE directory, or a reference .pth/.pt/.bin file "
            "saved with torch.save") from None


def unwrap(obj: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The weights inside a training checkpoint (under `model`, `module`, ...), with wrapper prefixes stripped."""
    for key in _WRAPPER_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    state = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if k.startswith(prefix):
                    k, changed = k[len(prefix):], True
        state[k] = v
    return state


def remap_reference(state: Mapping[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor]]:
    """Reference key layout -> ours (the same names, less the prefix some kinds carry there). Returns the kind the
    weights describe (pre-training: encoder + decoder; classifier: fine-tuned or distilled; encoder only)."""
    name = recognise(state, "reference")
    prefix = MODEL_KINDS[name].reference_prefix
    return name, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def infer_config(state: Mapping[str, torch.Tensor], model_type: str, preset: str | None, **overrides: Any
                 ) -> VideoMAEConfig:
    """Architecture from the weights' shapes; what shapes can't tell (heads, frames, size) from the preset."""
    kind = _kind(model_type)
    enc = kind.encoder_prefix
    proj = state.get(f"{enc}patch_embed.proj.weight")
    if proj is None:
        raise CheckpointError(f"no '{enc}patch_embed.proj.weight' in the checkpoint: not a VideoMAE state dict")
    embed_dim, in_chans, tubelet, patch, _ = proj.shape
    depth = 1 + max(int(k[len(f"{enc}blocks."):].split(".")[0]) for k in state if k.startswith(f"{enc}blocks."))
    if preset is None:
        by_width = {preset_fields(p)["embed_dim"]: p for p in ("small", "base", "large", "huge", "giant")}
        preset = by_width.get(int(embed_dim))
        if preset is None:
            raise CheckpointError(f"embed_dim {embed_dim} matches no paper preset; pass preset= (one of "
                                  f"{', '.join(list_presets())}) and overrides")
    fields: dict[str, Any] = dict(embed_dim=int(embed_dim), in_chans=int(in_chans), tubelet_size=int(tubelet),
                                  patch_size=int(patch), depth=depth)
    fc1 = state[f"{enc}blocks.0.mlp.fc1.weight"]
    fields["mlp_ratio"] = fc1.shape[0] / embed_dim
    fields["qkv_bias"] = f"{enc}blocks.0.attn.q_bias" in state
    fields["init_values"] = 0.1 if f"{enc}blocks.0.gamma_1" in state else 0.0
    if kind.decoder:
        fields["decoder_embed_dim"] = int(state["encoder_to_decoder.weight"].shape[0])
        fields["decoder_depth"] = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("decoder.blocks."))
    else:  # mean pooling ends in `fc_norm`; without it (a pre-training encoder) the blocks end in `norm`
        fields["use_mean_pooling"] = "fc_norm.weight" in state
    if kind.head and "head.weight" in state:
        fields["num_classes"] = int(state["head.weight"].shape[0])
    base = preset_fields(preset)
    if abs(base["mlp_ratio"] * embed_dim - fc1.shape[0]) < 1:
        fields["mlp_ratio"] = base["mlp_ratio"]  # keep 48/11 exact for giant
    return VideoMAEConfig(**{**base, "preset": preset, **fields, **overrides})


# --------------------------------------------------------------------------------------- Hugging Face VideoMAE
HF_BLOCK = {  # HF VideoMAELayer module -> reference Block module (the inverse in videomae/export_hf.py)
    "attention.output.dense": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
}


def _hf_block(prefix_in: str, prefix_out: str, state: Mapping[str, torch.Tensor], out: dict[str, torch.Tensor]
              ) -> None:
    """One HF VideoMAELayer -> one reference Block (query/key/value fused into qkv, k without bias)."""
    a = f"{prefix_in}attention.attention."
    out[f"{prefix_out}attn.qkv.weight"] = torch.cat(
        [state[f"{a}query.weight"], state[f"{a}key.weight"], state[f"{a}value.weight"]], dim=0)
    q_bias = state.get(f"{a}query.bias", state.get(f"{a}q_bias"))  # transformers >= 5 / < 5
    v_bias = state.get(f"{a}value.bias", state.get(f"{a}v_bias"))
    if q_bias is not None:
        out[f"{prefix_out}attn.q_bias"] = q_bias
        out[f"{prefix_out}attn.v_bias"] = v_bias
    for src, dst in HF_BLOCK.items():
        for p in ("weight", "bias"):
            out[f"{prefix_out}{dst}.{p}"] = state[f"{prefix_in}{src}.{p}"]


# Decoder weights that keep their names between our state dict and transformers' VideoMAEForPreTraining (both ways).
HF_SAME_NAME_DECODER_KEYS = ("decoder.norm.weight", "decoder.norm.bias", "decoder.head.weight", "decoder.head.bias",
                             "encoder_to_decoder.weight", "mask_token")


def remap_hf(state: Mapping[str, torch.Tensor], hf_config: Mapping[str, Any]) -> tuple[str, dict[str, torch.Tensor]]:
    """HF VideoMAEForPreTraining / VideoMAEModel / VideoMAEForVideoClassification keys -> ours."""
    if any(k.startswith("videomae.") for k in state):
        state = {k[len("videomae."):] if k.startswith("videomae.") else k: v for k, v in state.items()}
    model_type = recognise(state, "hugging_face")
    kind = MODEL_KINDS[model_type]
    enc = kind.encoder_prefix
    out: dict[str, torch.Tensor] = {}
    out[f"{enc}patch_embed.proj.weight"] = state["embeddings.patch_embeddings.projection.weight"]
    out[f"{enc}patch_embed.proj.bias"] = state["embeddings.patch_embeddings.projection.bias"]
    for i in range(hf_config["num_hidden_layers"]):
        _hf_block(f"encoder.layer.{i}.", f"{enc}blocks.{i}.", state, out)
    if "layernorm.weight" in state:
        out[f"{enc}norm.weight"], out[f"{enc}norm.bias"] = state["layernorm.weight"], state["layernorm.bias"]
    if kind.decoder:
        for i in range(hf_config["decoder_num_hidden_layers"]):
            _hf_block(f"decoder.decoder_layers.{i}.", f"decoder.blocks.{i}.", state, out)
        for k in HF_SAME_NAME_DECODER_KEYS:
            out[k] = state[k]
    if kind.head:
        if "fc_norm.weight" in state:
            out["fc_norm.weight"], out["fc_norm.bias"] = state["fc_norm.weight"], state["fc_norm.bias"]
        out["head.weight"], out["head.bias"] = state["classifier.weight"], state["classifier.bias"]
    return model_type, out


def hf_to_config(hf: Mapping[str, Any], model_type: str, **overrides: Any) -> VideoMAEConfig:
    kind = _kind(model_type)
    hidden = hf.get("hidden_size", 768)
    fields = dict(
        img_size=hf.get("image_size", 224), patch_size=hf.get("patch_size", 16), num_frames=hf.get("num_frames", 16),
        tubelet_size=hf.get("tubelet_size", 2), in_chans=hf.get("num_channels", 3), embed_dim=hidden,
        depth=hf.get("num_hidden_layers", 12), num_heads=hf.get("num_attention_heads", 12),
        mlp_ratio=hf.get("intermediate_size", 4 * hidden) / hidden,
        qkv_bias=hf.get("qv_bias", hf.get("qkv_bias", True)),
        norm_eps=hf.get("layer_norm_eps", 1e-12), decoder_embed_dim=hf.get("decoder_hidden_size", 384),
        decoder_depth=hf.get("decoder_num_hidden_layers", 4),
        decoder_num_heads=hf.get("decoder_num_attention_heads", 6),
        # HF builds the decoder's final norm and fc_norm as nn.LayerNorm(dim): torch's default eps, not layer_norm_eps.
        head_norm_eps=1e-5,
        # HF's VideoMAEModel ends in `layernorm` exactly when use_mean_pooling is off, as our classifier/encoder ends
        # in `norm`; so the flag carries over for encoder-only weights too (else their missing `norm` fails to load).
        use_mean_pooling=hf.get("use_mean_pooling", True) if not kind.decoder else False,
    )
    if kind.decoder and hf.get("use_mean_pooling", True):
        raise CheckpointError("HF VideoMAEForPreTraining with use_mean_pooling=true has no encoder layernorm; our "
                              "(the reference's) pre-training encoder always ends in one, so it cannot be loaded")
    if kind.head:
        fields["num_classes"] = len(hf.get("id2label") or {}) or hf.get("num_labels", 2)
    dec_hidden = hf.get("decoder_intermediate_size", fields["decoder_embed_dim"] * fields["mlp_ratio"])
    if kind.decoder and int(fields["decoder_embed_dim"] * fields["mlp_ratio"]) != dec_hidden:
        raise CheckpointError("HF decoder_intermediate_size must equal decoder_hidden_size * the encoder's MLP ratio")
    return VideoMAEConfig(**{**fields, **overrides})


def _read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    if (directory / "model.safetensors").exists():
        return load_file(str(directory / "model.safetensors"))
    if (directory / "pytorch_model.bin").exists():
        return read_torch_file(directory / "pytorch_model.bin")
    raise CheckpointError(f"{directory}: a Hugging Face config.json but no model.safetensors or pytorch_model.bin")


# --------------------------------------------------------------------------------------------------- entry point
def load_model(source: str | Path, preset: str | None = None, *, storage_options: storage.Options = None,
               **overrides: Any) -> Model:
    """Load weights from our model directory (or a directory holding one under `model/`: training checkpoints, run
    directories), a reference `.pth` (or a reference export's directory, holding `model.pth`), or a Hugging Face
    VideoMAE directory, at a local path or any URI `videomae.storage` reaches (`storage_options` for its filesystem);
    returns the pre-training model or the classifier, whichever the weights describe. `overrides` change config
    fields (e.g. `drop_path_rate`)."""
    text = os.fspath(source)
    if not storage.exists(text, storage_options):
        raise FileNotFoundError(f"no checkpoint at {source}")
    if not storage.is_local(text):  # a URI: load a local copy of just the files a model directory needs
        if storage.is_file(text, storage_options):
            with storage.local_file(text, storage_options) as local:
                return load_model(local, preset, **overrides)
        with storage.local_dir(text, _MODEL_FILES, storage_options) as local:
            return load_model(local, preset, **overrides)
    path = storage.local_path(text)
    if path.is_dir() and not (path / CONFIG_FILE).exists() and (path / MODEL_SUBDIR / CONFIG_FILE).exists():
        path = path / MODEL_SUBDIR
    if path.is_dir() and not (path / CONFIG_FILE).exists() and (path / REFERENCE_FILE).is_file():
        path = path / REFERENCE_FILE
    if path.is_dir():
        meta = json.loads((path / CONFIG_FILE).read_text()) if (path / CONFIG_FILE).exists() else None
        if meta is None:
            raise CheckpointError(f"{path}: no config.json (neither our model directory nor a Hugging Face one)")
        if meta.get("model_type") == "videomae" or "hidden_size" in meta:
            model_type, state = remap_hf(_read_hf_weights(path), meta)
            cfg = hf_to_config(meta, model_type, **overrides)
            return _load_foreign(model_type, cfg, state, f"Hugging Face weights {path}")
        state = load_file(str(path / WEIGHTS_FILE))
        # Directories from before model_type was written: the kind their weights (our key layout) describe.
        kind = _kind(meta.pop("model_type", None) or recognise(state, "reference"))
        model = kind.build(VideoMAEConfig(**{**meta, **overrides}))
        return load_strict(model, state, source=str(path))
    raw = read_torch_file(path)
    model_type, state = remap_reference(unwrap(raw))
    ours = raw.get(REFERENCE_CONFIG_KEY) if isinstance(raw, Mapping) else None
    cfg = (VideoMAEConfig(**{**ours, **overrides}) if isinstance(ours, Mapping) and preset is None
           else infer_config(state, model_type, preset, **overrides))
    return _load_foreign(model_type, cfg, state, f"reference checkpoint {path}")


def _load_foreign(model_type: str, cfg: VideoMAEConfig, state: dict[str, torch.Tensor], source: str) -> Model:
    kind = MODEL_KINDS[model_type]
    return load_strict(kind.build(cfg), state, allow_missing=kind.may_lack, source=source)


def init_classifier_from_pretrain(clf: VideoMAEClassifier, source: str | Path | Model) -> VideoMAEClassifier:
    """Copy a pre-trained encoder into a classifier (the reference's fine-tuning init): `encoder.*` weights load,
    the decoder is dropped, `fc_norm` and `head` stay fresh. With mean pooling the encoder's final `norm` has no place
    (the classifier's `norm` is the identity), as in the reference."""
    if isinstance(source, (str, Path)):
        if Path(source).suffix in (".pth", ".pt", ".bin"):
            with storage.local_file(os.fspath(source)) as local:
                kind, state = remap_reference(unwrap(read_torch_file(Path(local))))
        else:
            source = load_model(source)
    if not isinstance(source, (str, Path)):
        kind, state = model_kind(source), source.state_dict()
    prefix = MODEL_KINDS[kind].encoder_prefix  # the encoder's weights, without a head or its fc_norm
    state = {k[len(prefix):]: v for k, v in state.items()
             if k.startswith(prefix) and not k[len(prefix):].startswith(("head.", "fc_norm."))}
    unexpected_ok = ("norm.",) if clf.cfg.use_mean_pooling else ()
    return load_strict(clf, state, allow_missing=("head.", "fc_norm."), allow_unexpected=unexpected_ok,
                       source=str(source) if isinstance(source, (str, Path)) else "pre-trained model")
