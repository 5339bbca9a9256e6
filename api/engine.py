"""The loaded model and what runs it: the micro-batcher (one model thread), the decode pool, the admission gate, and
the registry of model operations the batch thread runs (`OPERATIONS`: embed, reconstruct, ...; each registered
with `@operation(name)` next to the endpoint that uses it).

Loaded once at start-up through `videomae.load_model`, which accepts our model directory, a Ray training checkpoint
holding one, a reference `.pth` (architecture from VIDEOMAE_PRESET) and a Hugging Face VideoMAE directory. With
VIDEOMAE_INDEX the search index (videomae.search) is loaded beside it, and whether the served weights made its
features is noted (`index_matches_model`), so an uploaded query is only embedded where its feature is comparable.

Which feature `/v1/embed` returns (the model's `forward_pooled`):
- pre-training model: the mean of the encoder's tokens after its final LayerNorm, no masking;
- classifier: `fc_norm(mean of tokens)`, the vector its head reads (the reference's fine-tuned `VisionTransformer`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from api.batching import MicroBatcher
from api.errors import ApiError
from api.schemas import ModelInfo
from api.settings import Settings
from videomae import VideoMAEConfig, load_model
from videomae.features import weights_fingerprint
from videomae.model import MODEL_KINDS, RECONSTRUCT, Model, model_kind
from videomae.search import SearchIndex

log = logging.getLogger(__name__)
T = TypeVar("T")

FEATURE_PRETRAIN = "mean of the encoder tokens after the final norm (VideoMAEPretrain.forward_pooled)"
FEATURE_CLASSIFIER = "fc_norm(mean of the encoder tokens), the input of the head (VideoMAEClassifier.forward_pooled)"
FEATURE_CLASSIFIER_NO_FC_NORM = "mean of the encoder tokens after the final norm (VideoMAEClassifier.forward_pooled)"


class StartupError(Exception):
    """The model or the index named by the settings does not load: one line that names the variable, the path, why,
    and the command that makes one (`python -m api` prints it and exits 2, before serving)."""


MAKE_MODEL = ("to make one: `make demo` (runs/demo/pretrain/model) or `python trainer/pretrain.py --config "
              "configs/pretrain/tiny.yaml`")
MAKE_INDEX = "to make one: `make demo` (runs/demo/index) or `python trainer/search.py build --features DIR --index DIR`"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def load_served_model(settings: Settings) -> Model:
    """`videomae.load_model` on VIDEOMAE_MODEL; any failure (missing, unreadable, not a checkpoint) -> StartupError."""
    try:
        return load_model(settings.model, preset=settings.preset)
    except Exception as e:  # FileNotFoundError, CheckpointError, a corrupt file: all mean "will not serve"
        raise StartupError(f"VIDEOMAE_MODEL={settings.model} does not load: {_one_line(e)}; {MAKE_MODEL}") from e


def load_served_index(settings: Settings) -> SearchIndex:
    try:
        return SearchIndex.load(settings.index)
    except Exception as e:
        raise StartupError(f"VIDEOMAE_INDEX={settings.index} does not load: {_one_line(e)}; {MAKE_INDEX}") from e


@dataclass(frozen=True)
class Operation:
    """What the model thread does with one batch of an operation: `run(model, payloads)`, one result per payload."""

    name: str
    run: Callable[[Model, list[Any]], list[Any]]


OPERATIONS: dict[str, Operation] = {}


def operation(name: str) -> Callable:
    """Register a batch function as the operation `name` (`await host.run(name, payloads, shape)` reaches it)."""

    def register(fn: Callable[[Model, list[Any]], list[Any]]) -> Callable:
        OPERATIONS[name] = Operation(name, fn)
        return fn

    return register


def describe(model: Model) -> ModelInfo:
    cfg, name = model.cfg, model_kind(model)
    kind = MODEL_KINDS[name]
    if kind.decoder:
        feature = FEATURE_PRETRAIN
    else:
        feature = FEATURE_CLASSIFIER if model.fc_norm is not None else FEATURE_CLASSIFIER_NO_FC_NORM
    return ModelInfo(
        id=f"videomae-{cfg.preset or 'custom'}-{name}",
        preset=cfg.preset,
        model_type=name,
        num_frames=cfg.num_frames,
        img_size=cfg.img_size,
        tubelet_size=cfg.tubelet_size,
        patch_size=cfg.patch_size,
        feature_dim=cfg.embed_dim,
        feature=feature,
        can_reconstruct=RECONSTRUCT in kind.serves,
        num_classes=cfg.num_classes if kind.head else 0,
        parameters=sum(p.numel() for p in model.parameters()),
    )


class ModelHost:
    """Owns the model; `await host.run(key, payloads)` batches, `await host.offload(fn, ...)` decodes."""

    def __init__(self, model: Model, settings: Settings,
                 on_batch: Callable[[Hashable, int, float], None] | None = None):
        self.model = model.eval()
        self.settings = settings
        self.info = describe(model)
        self.batcher = MicroBatcher(self._run_batch, settings.max_batch, settings.max_wait_ms / 1000, on_batch)
        self._decode_pool = ThreadPoolExecutor(max_workers=settings.decode_workers, thread_name_prefix="videomae-io")
        self.inflight = 0
        self.index: SearchIndex | None = None
        self.index_matches_model = False

    @classmethod
    def load(cls, settings: Settings, on_batch: Callable[[Hashable, int, float], None] | None = None) -> ModelHost:
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        model = load_served_model(settings)
        host = cls(model, settings, on_batch)
        if settings.index:
            host.index = load_served_index(settings)
            made_by = (host.index.meta.get("model") or {}).get("fingerprint")
            host.index_matches_model = made_by == weights_fingerprint(model)
            log.info("search index %s: %d clips (%s); made by the served model: %s", settings.index, len(host.index),
                     host.index.meta.get("kind"), host.index_matches_model)
        host.warm_up()
        log.info("loaded %s (%d parameters, reconstruct=%s)", host.info.id, host.info.parameters,
                 host.info.can_reconstruct)
        return host

    @property
    def cfg(self) -> VideoMAEConfig:
        return self.model.cfg

    def warm_up(self) -> None:
        """One forward at start-up, so the first request does not pay for lazy initialisation."""
        c = self.cfg
        with torch.inference_mode():
            self.model.forward_pooled(torch.zeros(1, 3, c.num_frames, c.img_size, c.img_size))

    # ------------------------------------------------------------------------------------- lifecycle and gating
    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def ready(self) -> bool:
        return self.batcher.running

    def admit(self) -> None:
        """Take a request slot or refuse with 503 + Retry-After (the bounded queue)."""
        if self.inflight >= self.settings.queue_size:
            raise ApiError(503, "overloaded", f"{self.inflight} requests in progress; retry later",
                           headers={"Retry-After": str(self.settings.retry_after_s)})
        self.inflight += 1

    def release(self) -> None:
        self.inflight -= 1

    def require_decoder(self) -> None:
        if not self.info.can_reconstruct:
            raise ApiError(409, "no_decoder",
                           f"the served model ({self.info.id}) has no decoder: reconstruction needs a pre-training "
                           "checkpoint with its decoder, not a fine-tuned or encoder-only one")

    @contextlib.asynccontextmanager
    async def deadline(self) -> AsyncIterator[None]:
        """Bound decode + queue + forward by `request_timeout_s`; past it the request gets 503 + Retry-After (the
        server is too busy to answer in time) and its queued clips are dropped before they reach the model."""
        limit = self.settings.request_timeout_s
        try:
            async with asyncio.timeout(limit):
                yield
        except TimeoutError:
            raise ApiError(503, "timeout", f"not answered within {limit:g} s; retry later",
                           headers={"Retry-After": str(self.settings.retry_after_s)}) from None

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking I/O (probe, decode, image encoding) in the decode pool."""
        return await asyncio.get_running_loop().run_in_executor(self._decode_pool, fn, *args)

    async def run(self, op: str, payloads: Sequence[Any], shape: Hashable = ()) -> list[Any]:
        """Results of operation `op` for `payloads`, batched with other requests' payloads of the same `shape`."""
        if op not in OPERATIONS:
            raise KeyError(f"no operation {op!r}; registered: {', '.join(sorted(OPERATIONS))}")
        return await self.batcher.run((op, shape), payloads)

    # ---------------------------------------------------------------------------------- the model thread's work
    def _run_batch(self, key: tuple[str, Hashable], payloads: list[Any]) -> list[Any]:
        with torch.inference_mode():
            return OPERATIONS[key[0]].run(self.model, payloads)
