"""Our models as Hugging Face `transformers` VideoMAE directories: the inverse of `checkpoint.remap_hf`.

The kind's `transformers` class (`MODEL_KINDS[...].hugging_face_class`) is built from a `VideoMAEConfig` holding every
field our config implies, our weights are renamed to its names (the reference's fused `qkv` split into query, key and
value; `q_bias`/`v_bias` to the query and value biases, the key has none in both) and loaded into it strictly, and
`save_pretrained` writes the directory (config.json + model.safetensors), so what is written is what `transformers`
itself reads back.

What HF cannot hold is refused with the field named (layer scale; a classifier that does not mean-pool, since HF's
then classifies token 0), and what it holds differently is said in one line each (`notes`): the eps of the decoder's
final norm and of `fc_norm`, which HF fixes at torch's default; the dual-masking decoder mask, a training-time choice
that HF's VideoMAE V1 pre-training model does not have; an encoder's `fc_norm`, which `VideoMAEModel` has no place for.
"""

from __future__ import annotations

from pathlib import Path

import torch

from videomae.checkpoint import HF_BLOCK, HF_SAME_NAME_DECODER_KEYS
from videomae.model import ModelKind

HF_HEAD_EPS = 1e-5  # HF builds decoder.norm and fc_norm as nn.LayerNorm(dim): torch's default eps


class ExportError(ValueError):
    """A model that a format cannot hold; the message names the field."""


def hf_config_fields(model: torch.nn.Module, kind: ModelKind) -> dict:
    """The `transformers.VideoMAEConfig` fields of `model`'s config; refuses what HF cannot represent."""
    cfg = model.cfg
    if cfg.init_values > 0:
        raise ExportError(f"init_values={cfg.init_values}: layer scale (gamma_1, gamma_2) has no place in Hugging "
                          "Face's VideoMAE; export it as reference or onnx")
    if kind.head and not cfg.use_mean_pooling:
        raise ExportError("use_mean_pooling=False: Hugging Face's VideoMAEForVideoClassification then classifies "
                          "token 0, ours the mean of all tokens (VideoMAE has no class token); export it as "
                          "reference or onnx")
    return dict(
        image_size=cfg.img_size, patch_size=cfg.patch_size, num_channels=cfg.in_chans, num_frames=cfg.num_frames,
        tubelet_size=cfg.tubelet_size, hidden_size=cfg.embed_dim, num_hidden_layers=cfg.depth,
        num_attention_heads=cfg.num_heads, intermediate_size=int(cfg.embed_dim * cfg.mlp_ratio), hidden_act="gelu",
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=cfg.norm_eps, qv_bias=cfg.qkv_bias,
        # The pre-training encoder always ends in a norm (the reference's), which HF has exactly when this is off.
        use_mean_pooling=False if kind.decoder else cfg.use_mean_pooling,
        decoder_hidden_size=cfg.decoder_embed_dim, decoder_num_hidden_layers=cfg.decoder_depth,
        decoder_num_attention_heads=cfg.decoder_num_heads,
        decoder_intermediate_size=int(cfg.decoder_embed_dim * cfg.mlp_ratio),
        norm_pix_loss=True,  # our targets are always per-tubelet normalised pixels (videomae.targets)
    )


def hf_notes(model: torch.nn.Module, kind: ModelKind) -> list[str]:
    """One line for each thing the HF export holds differently from `model`."""
    cfg, notes = model.cfg, []
    has_fc_norm = getattr(model, "fc_norm", None) is not None
    head_norms = [n for n, there in (("decoder.norm", kind.decoder), ("fc_norm", kind.head and has_fc_norm)) if there]
    if head_norms and cfg.head_eps != HF_HEAD_EPS:
        notes.append(f"head_norm_eps: {' and '.join(head_norms)} run with eps {cfg.head_eps:g} here, Hugging Face "
                     f"fixes it at {HF_HEAD_EPS:g}, so its outputs differ slightly (videomae.load_model of the export "
                     f"takes {HF_HEAD_EPS:g})")
    if kind.decoder:
        notes.append("decoder mask: the dual-masking decoder mask is a training-time choice, not in the export; "
                     "VideoMAEForPreTraining decodes every hidden token (VideoMAE V1 = ours with dec_mask=enc_mask)")
    if not kind.head and not kind.decoder and has_fc_norm:
        notes.append("fc_norm: VideoMAEModel has no pooling norm, fc_norm.weight/bias are left out "
                     "(last_hidden_state equals ours; our forward_pooled is fc_norm of its mean)")
    return notes


def _block_to_hf(ours: str, hf: str, state: dict, out: dict, hf_keys: set[str]) -> None:
    """One reference Block -> one HF VideoMAELayer (qkv split into query/key/value; biases named as this
    `transformers` names them: `query.bias` from version 5, `q_bias` before)."""
    a = f"{hf}attention.attention."
    q, k, v = state[f"{ours}attn.qkv.weight"].chunk(3, dim=0)  # 3 x (C, C)
    out[f"{a}query.weight"], out[f"{a}key.weight"], out[f"{a}value.weight"] = q, k, v
    if f"{ours}attn.q_bias" in state:
        five = f"{a}query.bias" in hf_keys
        out[f"{a}query.bias" if five else f"{a}q_bias"] = state[f"{ours}attn.q_bias"]
        out[f"{a}value.bias" if five else f"{a}v_bias"] = state[f"{ours}attn.v_bias"]
    for hf_name, our_name in HF_BLOCK.items():
        for p in ("weight", "bias"):
            out[f"{hf}{hf_name}.{p}"] = state[f"{ours}{our_name}.{p}"]


def hf_state(state: dict[str, torch.Tensor], kind: ModelKind, depth: int, decoder_depth: int, hf_keys: set[str]
             ) -> dict[str, torch.Tensor]:
    """Our weights under the names of the HF class whose state dict has `hf_keys`."""
    enc = kind.encoder_prefix
    base = "videomae." if any(k.startswith("videomae.") for k in hf_keys) else ""  # HF heads wrap VideoMAEModel
    out = {f"{base}embeddings.patch_embeddings.projection.{p}": state[f"{enc}patch_embed.proj.{p}"]
           for p in ("weight", "bias")}
    for i in range(depth):
        _block_to_hf(f"{enc}blocks.{i}.", f"{base}encoder.layer.{i}.", state, out, hf_keys)
    if f"{enc}norm.weight" in state:
        for p in ("weight", "bias"):
            out[f"{base}layernorm.{p}"] = state[f"{enc}norm.{p}"]
    if kind.decoder:
        for i in range(decoder_depth):
            _block_to_hf(f"decoder.blocks.{i}.", f"decoder.decoder_layers.{i}.", state, out, hf_keys)
        for k in HF_SAME_NAME_DECODER_KEYS:
            out[k] = state[k]
    if kind.head:
        if "fc_norm.weight" in state:
            out["fc_norm.weight"], out["fc_norm.bias"] = state["fc_norm.weight"], state["fc_norm.bias"]
        out["classifier.weight"], out["classifier.bias"] = state["head.weight"], state["head.bias"]
    return out


def write_hf(model: torch.nn.Module, kind: ModelKind, out: Path, id2label: dict[int, str] | None) -> list[str]:
    """Write `model` as a `transformers` directory at `out` (config.json + model.safetensors); returns the notes."""
    import transformers  # the optional export extra; only this format needs it

    fields = hf_config_fields(model, kind)
    if kind.head:
        fields["id2label"] = id2label or {i: f"LABEL_{i}" for i in range(model.cfg.num_classes)}
        fields["label2id"] = {name: i for i, name in fields["id2label"].items()}
    config = transformers.VideoMAEConfig(**fields)
    dtype = next(model.parameters()).dtype
    hf = getattr(transformers, kind.hugging_face_class)(config).to(dtype).eval()
    hf_keys = set(hf.state_dict())
    state = hf_state(model.state_dict(), kind, model.cfg.depth, model.cfg.decoder_depth, hf_keys)
    hf.load_state_dict({k: v.detach().contiguous() for k, v in state.items()}, strict=True)
    transformers.utils.logging.disable_progress_bar()  # a progress bar per file in logs
    hf.save_pretrained(out, safe_serialization=True)
    return hf_notes(model, kind)
