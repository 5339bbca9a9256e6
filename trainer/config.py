"""Trainer configs: YAML -> `--set a.b=value` overrides -> pydantic validation, with errors naming the bad key.

One model per recipe (`PretrainConfig`, `PostpretrainConfig`, `EvaluateConfig`) built from shared sections, so a
component receives only the section it needs (`data`, `optim`, `scaling`, ...). Derived values (the scaled learning
rate, the global batch) are properties, never written back. Everything is checked on the driver, before Ray starts
a worker: an unknown key, a wrong type, a preset that does not exist, a running-cell mask on an odd grid.

Keys other parts rely on (docs/architecture.md "Configs"): `data.path` (a shard dataset directory/URI, or a list for a
mix), `model.preset`, `run.name` and `run.storage_path` (Ray Train's run identity: the same pair resumes).

The recipes are declared once, in `RECIPES` (name -> config model): recipe `name` runs as `trainer/<name>.py`
(`recipe_script`) with its configs under `configs/<name>/`; the tests that load every config and check every command
line derive from it. A recipe's config says what its training samples carry (`sample_masks`, `sample_augment`), so
the data path never asks which recipe it serves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from videomae.config import VideoMAEConfig
from videomae.configfile import ConfigError, Location, apply_override, load_typed  # noqa: F401 (re-exported)
from videomae.masks import MaskingConfig
from videomae.presets import list_presets


class _Section(BaseModel):
    # A typo in a recipe must fail loudly, not fall back to a default.
    model_config = ConfigDict(extra="forbid")


class RunSection(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    # Ray Train's storage: a local path or a URI (s3://, gs://, NFS). The same (storage_path, name) resumes.
    storage_path: Location = Field("~/videomae_runs", validate_default=True)
    seed: int = 0
    checkpoint_every: int = Field(500, ge=1)  # steps; a checkpoint is also written at the end
    keep_checkpoints: int = Field(3, ge=1)
    max_failures: int = Field(2, ge=0)  # worker deaths survived per run (FailureConfig), each from the last checkpoint
    log_every: int = Field(20, ge=1)
    tensorboard: bool = True
    # Filesystem options for a URI storage_path (credentials, endpoint: fsspec's storage_options).
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @property
    def storage(self) -> str:
        """Where Ray Train keeps the run: `storage_path`, absolute since validation (Ray Train needs that). Under
        `ray job submit` a relative path resolves in the job's own working-dir copy: give clusters an absolute path
        or a URI."""
        return self.storage_path

    @property
    def run_dir(self) -> str:
        return f"{self.storage.rstrip('/')}/{self.name}"


class DataSection(_Section):
    path: Location | list[Location]
    # Sampling shares of a mix, one per path (default: proportional to each dataset's clip count).
    weights: list[float] | None = None
    split: str = "train"
    # Clips per worker per forward/backward *before* repetition: the reference's `--batch_size` (videos per GPU). With
    # `optim.accum_steps` k, an optimizer step takes k of these micro-batches on every worker.
    batch_size: int = Field(8, ge=1)
    # Repeated augmentation (the reference's `--num_sample`): each decoded clip gives this many crops/masks.
    num_sample: int = Field(1, ge=1)
    # Take every `frame_step`-th stored frame: shards stored at stride s feed a model sampling at stride s*frame_step.
    frame_step: int = Field(1, ge=1)
    # Multi-scale crop (the reference's GroupMultiScaleCrop scales), then resize to the model's input size.
    scales: list[float] = Field(default_factory=lambda: [1.0, 0.875, 0.75, 0.66])
    # Read streams the global batch is drawn from (default: scaling.num_workers). Each epoch's sample order is cut into
    # this many contiguous parts; stream i reads part i of every epoch, and each step takes global batch / streams
    # clips from every stream. Worker w reads streams w*k .. w*k+k-1 (k = streams / num_workers), so a sample is read by
    # one worker only, and the data of a step does not depend on the worker count: 1 worker with 2 streams and a batch
    # of 2b sees what 2 workers of batch b see. Keep it when changing num_workers to continue a run's order exactly.
    streams: int | None = Field(None, ge=1)
    # Shuffle window: each read task reads this many chunks (Parquet row groups) and shuffles their rows together,
    # every video's first clip before any second one. One chunk holds all clips of a few videos; batches cut from a
    # single chunk put clips of one video side by side (trainer/plan.py).
    chunks_per_unit: int = Field(8, ge=1)
    # Ray Data: CPUs per decode task and how many decode tasks may run at once (leave CPU for the trainer).
    cpus_per_task: float = Field(1.0, gt=0)
    max_tasks: int | None = Field(None, ge=1)
    prefetch_batches: int = Field(2, ge=0)
    # A decode task turns whole step shares, up to this many MB of uint8 pixels, into one output block (None: an
    # eighth of `buffer_mb`, at most 128). Larger blocks cost less per clip (Ray's fixed cost per object: Kinetics-like
    # 224 px, one share of 19 MB per block 48.9 clips/s per core, 4 shares 67), but the cap stops Ray Data a whole block
    # late, so the object store holds up to about `buffer_mb` + 4 blocks.
    block_mb: float | None = Field(None, gt=0)
    # Object-store budget for decoded samples waiting for the trainer (Ray Data otherwise runs far ahead).
    buffer_mb: int = Field(1024, ge=64)
    # Filesystem options for URI paths (credentials, endpoint: fsspec's storage_options).
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @property
    def paths(self) -> list[str]:
        return [self.path] if isinstance(self.path, str) else list(self.path)

    @model_validator(mode="after")
    def _check(self) -> DataSection:
        if not self.paths:
            raise ValueError("path: give at least one shard dataset")
        if self.weights is not None and len(self.weights) != len(self.paths):
            raise ValueError(f"weights: {len(self.weights)} weights for {len(self.paths)} paths")
        if self.weights is not None and (min(self.weights) < 0 or sum(self.weights) <= 0):
            raise ValueError("weights: must be >= 0 with a positive sum")
        if any(not 0 < s <= 1 for s in self.scales):
            raise ValueError("scales: each crop scale must be in (0, 1]")
        return self


class ModelSection(_Section):
    preset: str
    # Any architecture field of videomae.VideoMAEConfig (drop_path_rate, num_frames, ...).
    overrides: dict[str, Any] = Field(default_factory=dict)
    grad_checkpointing: bool = False  # the reference's `--with_checkpoint` (H and g)
    # torch.compile the model on the worker (inductor; fullgraph on one worker: the masked model is one graph; with
    # the DDP/FSDP wrapper on several). The first step pays the compilation (`compile_s` in the metrics), and so does
    # every restart.
    compile: bool = False
    # Attention kernel: "sdpa" (F.scaled_dot_product_attention), "explicit" (softmax(q k^T) v, the reference's), or
    # "auto": explicit on CPU under bf16 autocast (1.18x faster there, docs/model.md), SDPA everywhere else.
    attention: Literal["auto", "sdpa", "explicit"] = "auto"
    # Post-pre-training / fine-tuning / evaluation: weights to start from (our dir, a Ray checkpoint dir or a .pth).
    init_from: Location | None = None

    @field_validator("preset")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in list_presets():
            raise ValueError(f"unknown preset {v!r}; valid presets: {', '.join(list_presets())}")
        return v

    def architecture(self, **extra: Any) -> VideoMAEConfig:
        return VideoMAEConfig.from_preset(self.preset, **{**self.overrides, **extra},
                                          grad_checkpointing=self.grad_checkpointing)


class OptimSection(_Section):
    # Base learning rates per 256 clips, as the reference's scripts give them; scaled by global batch / 256.
    lr: float = Field(1.5e-4, gt=0)
    min_lr: float = Field(1e-5, ge=0)
    warmup_lr: float = Field(0.0, ge=0)  # linear warmup starts here (the reference: 0 in pre-training)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    layer_decay: float = Field(1.0, gt=0, le=1)  # < 1: layer-wise lr decay (fine-tuning)
    clip_grad: float | None = Field(None, gt=0)
    # Length: epochs over the dataset (the reference's unit) or steps; `max_steps` wins when set.
    epochs: float = Field(1.0, gt=0)
    warmup_epochs: float = Field(0.0, ge=0)
    max_steps: int | None = Field(None, ge=1)
    warmup_steps: int | None = Field(None, ge=0)
    scale_lr: bool = True
    # Gradient accumulation: micro-batches (`data.batch_size` clips per worker each) per optimizer step. The paper's
    # batch on fewer GPUs (MCG-NJU/VideoMAE#20, #54): the effective batch is data.batch_size x scaling.num_workers x
    # accum_steps, and the steps, the schedule, the lr scaling and the checkpoints all count optimizer steps.
    accum_steps: int = Field(1, ge=1)


class ScalingSection(_Section):
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    # ddp: DistributedDataParallel (Ray Train's prepare_model); fsdp: FSDP2 (`fully_shard` on every transformer block,
    # then the model): parameters, gradients and optimizer state sharded over the workers (large presets).
    strategy: Literal["ddp", "fsdp"] = "ddp"
    # bf16 autocast on GPU, fp32 on CPU ("auto"), or forced (bf16 autocast also runs on CPU). Weights and optimizer
    # state stay fp32 either way.
    precision: Literal["auto", "bf16", "fp32"] = "auto"


class MaskSection(MaskingConfig):
    """Encoder tube masking and decoder masking (none = V1, running_cell = V2, random/frame for ablations)."""


class CropAugmentSection(_Section):
    """Per-sample augmentation the data path applies (trainer/data.py) beside the multi-scale crop."""

    flip: bool = True  # off for direction-sensitive labels (SSv2-like, the synthetic motion task)
    rand_augment: str | None = "rand-m7-n4-mstd0.5-inc1"  # timm RandAugment string, same ops on every frame


class AugmentSection(CropAugmentSection):
    """Supervised augmentation (post-pre-training / fine-tuning): the reference's defaults; mixup/cutmix and label
    smoothing act in the recipe's loss."""

    mixup: float = Field(0.8, ge=0)
    cutmix: float = Field(1.0, ge=0)
    mixup_prob: float = Field(1.0, ge=0, le=1)
    mixup_switch_prob: float = Field(0.5, ge=0, le=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)


class EvalSection(_Section):
    split: str = "val"
    every: int | None = Field(None, ge=1)  # steps between validations (default: only at the end)
    # Multi-view testing: temporal clips per video (from its stored clips, evenly chosen) x spatial crops (1 or 3).
    num_clips: int = Field(5, ge=1)
    num_crops: Literal[1, 3] = 3
    batch_size: int = Field(16, ge=1)


class MonitorSection(_Section):
    """Learning health of a pre-training run (trainer/monitor.py): every `every` steps and at the end, the held-out
    reconstruction loss, a probe on frozen features (when the data has labels) and a reconstruction picture."""

    enabled: bool = True
    every: int | None = Field(None, ge=1)  # steps between checks (None: only at the end)
    split: str = "val"  # held-out clips: never trained on (none in the data: the monitor is off, with a warning)
    max_clips: int = Field(128, ge=1)
    mask_seed: int = 1234  # tube masks fixed per held-out clip: every check and every run scores the same tokens
    probe: Literal["knn", "linear", "none"] = "knn"  # fit on labeled clips of data.split, scored on `split`'s
    probe_train_clips: int = Field(1024, ge=1)
    pictures: bool = True  # <run_dir>/monitor/step_<step>.png
    picture_clips: int = Field(2, ge=1)


class AttentiveSection(_Section):
    """The attentive probe of trainer/evaluate.py (modes `attentive` and `probes`)."""

    epochs: int = Field(20, ge=1)
    lr: float = Field(1e-3, gt=0)
    queries: int = Field(1, ge=1)  # learned queries; their outputs are averaged before the linear head
    batch_size: int = Field(64, ge=1)
    weight_decay: float = Field(0.05, ge=0)


class DebugSection(_Section):
    # For the fault-tolerance test only: the worker kills its own process at this step, on the first attempt.
    fail_at_step: int | None = Field(None, ge=1)
    # Write the data position of every clip each worker trained on (its `seq`, per report window and rank) to
    # <run_dir>/data_log.jsonl: proof that workers read disjoint shares and a restart skips or repeats nothing.
    log_data: bool = False


class _Recipe(_Section):
    run: RunSection
    data: DataSection
    model: ModelSection
    optim: OptimSection = Field(default_factory=OptimSection)
    scaling: ScalingSection = Field(default_factory=ScalingSection)
    debug: DebugSection = Field(default_factory=DebugSection)

    @property
    def micro_batch(self) -> int:
        """Source clips per forward/backward over all workers (one micro-batch of every worker)."""
        return self.data.batch_size * self.scaling.num_workers

    @property
    def global_batch(self) -> int:
        """Source clips per optimizer step over all workers, the effective batch (the reference's total_batch_size,
        before repetition): `optim.accum_steps` micro-batches."""
        return self.micro_batch * self.optim.accum_steps

    @property
    def streams(self) -> int:
        """Read streams of the data order (trainer/data.py): `data.streams`, default one per worker."""
        return self.data.streams or self.scaling.num_workers

    @property
    def lr_scale(self) -> float:
        # The reference (run_mae_pretraining.py, run_class_finetuning.py) scales lr, min_lr and warmup_lr by
        # batch_size * world_size / 256 (x update_freq in the gradient-accumulation PR MCG-NJU/VideoMAE#54): the
        # effective batch, counting videos, not the num_sample repeats.
        return self.global_batch / 256 if self.optim.scale_lr else 1.0

    @model_validator(mode="after")
    def _check_streams(self) -> _Recipe:
        s, w = self.streams, self.scaling.num_workers
        if s % w:
            raise ValueError(f"data.streams: {s} streams cannot be shared evenly by {w} workers")
        if self.micro_batch % s:  # every micro-batch draws from every stream
            raise ValueError(f"data.streams: a micro-batch of {self.micro_batch} clips (data.batch_size x "
                             f"scaling.num_workers) cannot be drawn evenly from {s} streams")
        return self

    @model_validator(mode="after")
    def _check_architecture(self) -> _Recipe:
        try:
            arch = self.model.architecture()
        except (ValueError, TypeError) as e:
            raise ValueError(f"model.overrides: {e}") from None
        self._check_arch(arch)
        return self

    def _check_arch(self, arch: VideoMAEConfig) -> None:
        pass

    @property
    def sample_masks(self) -> MaskingConfig | None:
        """The encoder/decoder masks drawn for every training sample (None: none)."""
        return None

    @property
    def sample_augment(self) -> CropAugmentSection | None:
        """The supervised augmentation of every training sample (None: crops only)."""
        return None


class PretrainConfig(_Recipe):
    mask: MaskSection = Field(default_factory=MaskSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection)

    @property
    def sample_masks(self) -> MaskingConfig:
        return self.mask

    def _check_arch(self, arch: VideoMAEConfig) -> None:
        problems = self.mask.problems(arch.grid)
        if problems:
            raise ValueError(f"mask.{problems[0]}")


class _Labeled(_Section):
    # Fine-tuning / evaluating on one source: its classes only, the merged head projected through labels.json.
    target_source: str | None = None

    @property
    def sources(self) -> list[str] | None:
        """The sources whose clips count (None: all)."""
        return [self.target_source] if self.target_source else None


class PostpretrainConfig(_Recipe, _Labeled):
    augment: AugmentSection = Field(default_factory=AugmentSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    num_classes: int | None = Field(None, ge=2)  # default: from labels.json

    @property
    def sample_augment(self) -> AugmentSection:
        return self.augment


class TeacherSection(_Section):
    """Distillation's teacher: anything `videomae.load_model` reads (our model directory, a training checkpoint, a
    reference .pth, a Hugging Face directory), of any kind; frozen."""

    init_from: Location
    preset: str | None = None  # a reference .pth's preset when its weights do not tell (load_model's `preset`)


class DistillSection(_Section):
    """The distillation loss (trainer/distill.py): feature_weight x MSE(projected student tokens, layer-normed teacher
    tokens) + logit_weight x T^2 KL(teacher softmax / T || student softmax / T) when the teacher has a head."""

    feature_weight: float = Field(1.0, ge=0)
    logit_weight: float = Field(1.0, ge=0)
    temperature: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> DistillSection:
        if self.feature_weight + self.logit_weight <= 0:
            raise ValueError("feature_weight, logit_weight: at least one must be positive")
        return self


class DistillConfig(_Recipe):
    """A student (`model`: a preset, at random or from `model.init_from`) trained on the shards against a frozen
    `teacher`'s tokens and logits."""

    teacher: TeacherSection
    distill: DistillSection = Field(default_factory=DistillSection)
    augment: CropAugmentSection = Field(default_factory=CropAugmentSection)
    eval: EvalSection = Field(default_factory=EvalSection)  # val top-1 of a student with a head, on labeled videos

    @property
    def sample_augment(self) -> CropAugmentSection:
        return self.augment


class EvaluateConfig(_Labeled):
    """Frozen-feature evaluation (linear probe, k-NN) and classifier evaluation; runs in one process."""

    run: RunSection
    data: DataSection
    model: ModelSection
    # probes: k-NN, the linear and the attentive probe on the same forward passes, one run (the experiments'
    # frozen-feature protocol, the three side by side)
    mode: Literal["knn", "linear", "attentive", "probes", "classifier"] = "knn"
    train_split: str = "train"
    eval: EvalSection = Field(default_factory=EvalSection)
    knn_k: int = Field(20, ge=1)
    knn_temperature: float = Field(0.07, gt=0)
    linear_epochs: int = Field(100, ge=1)
    linear_lr: float = Field(1e-2, gt=0)
    # probes: the seeds of the linear and the attentive probe, each trained once per seed (default: [run.seed])
    linear_seeds: list[int] | None = None
    # The attentive probe (trainer/evaluation.py AttentivePooler: learned queries cross-attending over every frozen
    # encoder token, V-JEPA's and VideoGLUE's protocol): AdamW, minibatches, cosine lr.
    attentive: AttentiveSection = Field(default_factory=AttentiveSection)


# ---------------------------------------------------------------------------------------------- the recipes
# name -> its config model; the recipe runs as trainer/<name>.py, its configs live in configs/<name>/.
RECIPES: dict[str, type[BaseModel]] = {
    "pretrain": PretrainConfig,
    "postpretrain": PostpretrainConfig,
    "distill": DistillConfig,
    "evaluate": EvaluateConfig,
}


def recipe_script(name: str) -> str:
    """The recipe's entry point, relative to the repository root (what `ray job submit` runs)."""
    return f"trainer/{name}.py"


def load_config(recipe: str | type[BaseModel], path: str | Path | None, overrides: list[str] | None = None) -> Any:
    """Read YAML (optional), apply `--set` overrides, validate into the recipe's model (a name of RECIPES, or the
    model itself); ConfigError on problems."""
    if isinstance(recipe, str) and recipe not in RECIPES:
        raise ConfigError(f"no recipe {recipe!r}; recipes: {', '.join(RECIPES)}")
    model = RECIPES[recipe] if isinstance(recipe, str) else recipe
    return load_typed(model, path, overrides, name_source=True)
