"""Our models as ONNX: the encoder's pooled features, and the classifier's logits where the kind has a head.

One graph, input `clip` (B, 3, T, H, W) float, ImageNet-normalised as `videomae.transforms.eval_clip` makes it, with a
dynamic batch axis B (the clip size is the config's: the position table is resampled only for other sizes, which
would be a second graph). Outputs: `features` (B, C), the model's `forward_pooled`, and `logits` (B, num_classes) when
`MODEL_KINDS[...].head`. A pre-training model exports its encoder (the decoder is for training and reconstruction,
which the served ONNX does not do). Exported by torch's dynamo exporter at `OPSET`, checked by `onnx.checker`, fp32 or
fp16 (the weights and the graph cast; `clip` then fp16 too). The graph's metadata holds our config
(`videomae_config`, JSON) and the kind (`model_type`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path

import torch

from videomae.model import ModelKind

OPSET = 18
ONNX_FILE = "model.onnx"
_EXTERNAL_ABOVE = 1 << 30  # bytes of weights above which they go to model.onnx.data (protobuf's 2 GiB limit)


class _Served(torch.nn.Module):
    """What the ONNX graph computes: pooled features, and logits from them where there is a head."""

    def __init__(self, model: torch.nn.Module, head: bool):
        super().__init__()
        self.model, self.head = model, head

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.model.forward_pooled(clip)  # (B, C)
        if not self.head:
            return (features,)
        return features, self.model.head(self.model.head_dropout(features))  # (B, num_classes)


def output_names(kind: ModelKind) -> list[str]:
    return ["features", "logits"] if kind.head else ["features"]


def write_onnx(model: torch.nn.Module, kind: ModelKind, kind_name: str, out: Path, fp16: bool = False,
               opset: int = OPSET) -> list[str]:
    """Write `model` as `out/model.onnx`; returns the notes (one line each)."""
    import onnx  # the optional export extra; only this format needs it

    cfg, dtype = model.cfg, torch.float16 if fp16 else torch.float32
    model = copy.deepcopy(model).eval().to(dtype)  # the caller's model keeps its mode and precision
    example = torch.zeros(2, cfg.in_chans, cfg.num_frames, cfg.img_size, cfg.img_size, dtype=dtype)
    big = sum(p.numel() * p.element_size() for p in model.parameters()) > _EXTERNAL_ABOVE
    path = out / ONNX_FILE
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's notes and progress lines on its own internals
        torch.onnx.export(_Served(model, kind.head), (example,), str(path), input_names=["clip"],
                          output_names=output_names(kind), dynamic_shapes={"clip": {0: torch.export.Dim("batch")}},
                          opset_version=opset, dynamo=True, external_data=big, verbose=False)
    # Our config and kind as metadata, so that a server can tell the clip size and the kind without another file.
    graph = onnx.load(str(path), load_external_data=False)
    for key, value in (("videomae_config", json.dumps(cfg.to_json_dict())), ("model_type", kind_name)):
        graph.metadata_props.add(key=key, value=value)
    onnx.save(graph, str(path))
    onnx.checker.check_model(str(path) if big else onnx.load(str(path)))
    notes = []
    if kind.decoder:
        notes.append("decoder: the ONNX graph is the encoder's pooled features; the pre-training decoder is left out")
    return notes
