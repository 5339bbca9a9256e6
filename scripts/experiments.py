"""Does pre-training pay off? VideoMAE's data-efficiency experiment at small scale: one command, results under `out`.

    python scripts/experiments.py                      # configs/experiments/full.yaml (the headline, docs/results.md)
    python scripts/experiments.py --quick              # configs/experiments/quick.yaml (the CI test runs it)
    python scripts/experiments.py --only pretrain --arms running_cell,none
    python scripts/experiments.py --only report --publish docs/results

The protocol (Tong et al. 2022, VideoMAE, Table 4: pre-train on the videos you have, then fine-tune with their labels,
against the same fine-tuning from scratch), on videos generated here (`python -m ingest.objects_data`: textured
objects in motion, 8 motion classes, a few labeled train videos per class, held-out val videos, an unlabeled pool):
  data       python -m ingest.objects_data, then python -m ingest over the labeled and unlabeled videos
  pretrain   python trainer/pretrain.py once per arm and seed, one Ray run at a time (dual masking, V1, the
             shorter schedules of the length curve); each run's learning-health checks land in its metrics.jsonl
  finetune   python trainer/postpretrain.py on the labeled train videos, from each `finetune.from_arms` model of
             the same seed and from scratch with the same seeds, steps and lr; top-1 per held-out video
  probes     python trainer/evaluate.py (mode probes): k-NN and linear probe on frozen features of every pre-trained
             encoder and of random-init encoders of the same shape (`probes.random_seeds`)
  recon      held-out reconstruction loss with fixed masks, and the reconstruction picture (in this process)
  stepcost   training-step CPU time and peak memory per decoder mask, one fresh process each, one torch thread
  report     results.json (its `summary` is the headline), summary.md and the plots; `--publish DIR` copies them and
             the headline encoder (`publish_model`) to DIR/model (docs/results)

Finished units are kept and skipped on a rerun (each writes results/<unit>.json), so a run cut short goes on where
it stopped; `--fresh` removes the previous outputs first. Everything runs through the services' public entry
points as subprocesses, each starting its own in-process Ray.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

from pydantic import Field, model_validator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # experiments_report and stages, next to this file

import experiments_report  # noqa: E402
import stages  # noqa: E402
from stages import ROOT, Stage, StageConfig, Strict, set_args  # noqa: E402

from bench.processes import Watch  # noqa: E402

log = logging.getLogger("experiments")
PARTS = ("data", "pretrain", "finetune", "probes", "recon", "stepcost", "report")


# ---------------------------------------------------------------------------------------------- config
class Objects(Strict):
    """`python -m ingest.objects_data` arguments: the data of the experiment."""

    seed: int = 0
    train_per_class: int = Field(12, ge=1)
    val_per_class: int = Field(24, ge=1)
    unlabeled: int = Field(1600, ge=0)
    look: dict = Field(default_factory=dict)  # ingest.objects_data.Look fields

    def command(self, out: Path) -> list[str]:
        return [sys.executable, "-m", "ingest.objects_data", str(out), "--seed", str(self.seed),
                "--train-per-class", str(self.train_per_class), "--val-per-class", str(self.val_per_class),
                "--unlabeled", str(self.unlabeled), "--look", json.dumps(self.look)]


class Arm(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    set: list[str] = Field(default_factory=list)  # after the common pretrain `set`
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)


class FinetuneVariant(Strict):
    """More fine-tuning units under other settings (say, a longer schedule): finetune-<init>-<name>-s<seed>."""

    name: str
    inits: list[str] = Field(min_length=1)  # arms (their first model) and/or "scratch"
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    set: list[str] = Field(default_factory=list)  # after finetune.set


class Finetune(StageConfig):
    from_arms: list[str] = Field(min_length=1)  # seed s fine-tunes the arm's model of seed s (arms without it: none)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    # true: every seed fine-tunes the arm's first model (the spread is the fine-tuning seed's, not pre-training's)
    one_model_per_arm: bool = False
    arm_seeds: dict[str, list[int]] = Field(default_factory=dict)  # per arm, the fine-tuning seeds (default: seeds)
    variants: list[FinetuneVariant] = Field(default_factory=list)
    scratch_seeds: list[int] | None = None  # default: `seeds`


class Probes(StageConfig):
    random_seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)  # random-init encoders to probe


class Recon(Strict):
    seed: int = 1234  # masks of clip i come from numpy.random.default_rng([seed, i]): the same for every model
    max_clips: int = Field(200, ge=1)
    picture_clips: int = Field(2, ge=1)


class StepCost(Strict):
    preset: str
    overrides: dict = Field(default_factory=dict)
    batch: int = Field(1, ge=1)
    steps: int = Field(3, ge=1)
    decoders: list[str] = Field(default_factory=lambda: ["none", "running_cell"], min_length=1)


class Headline(Strict):
    """Which units the summary compares (results.json `summary`)."""

    pretrained: str = "running_cell"  # the V2 arm: fine-tuned from it vs from scratch; its probe vs random init
    v1: str | None = "none"  # the arm without decoder masking, for "running cell reaches V1 at 0.79x the FLOPs"
    v1_pair: str | None = None  # the running-cell arm compared with `v1` (same schedule); default: `pretrained`
    curve: list[str] = Field(default_factory=list)  # arms of the pre-training-length curve, shortest first
    publish_model: str = "running_cell-s0"  # the encoder copied to `--publish DIR`/model


class ExperimentConfig(Strict):
    out: str = "runs/experiments/full"
    data: Objects = Field(default_factory=Objects)
    ingest: list[str] = Field(default_factory=list)  # `--set`s on the generated ingest config
    pretrain: StageConfig
    arms: list[Arm] = Field(min_length=1)
    finetune: Finetune
    probes: Probes
    recon: Recon = Field(default_factory=Recon)
    step_cost: list[StepCost] = Field(default_factory=list)
    headline: Headline = Field(default_factory=Headline)

    @property
    def out_dir(self) -> Path:
        return Path(self.out) if Path(self.out).is_absolute() else (ROOT / self.out).resolve()

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"no arm {name!r}; arms: {', '.join(a.name for a in self.arms)}")

    @model_validator(mode="after")
    def _known_arms(self) -> ExperimentConfig:
        variant_arms = [i for v in self.finetune.variants for i in v.inits if i != "scratch"]
        for key, names in (("finetune.from_arms", self.finetune.from_arms), ("headline.curve", self.headline.curve),
                           ("finetune.arm_seeds", list(self.finetune.arm_seeds)),
                           ("finetune.variants.inits", variant_arms),
                           ("headline.pretrained", [self.headline.pretrained]),
                           ("headline.v1", [self.headline.v1] if self.headline.v1 else []),
                           ("headline.v1_pair", [self.headline.v1_pair] if self.headline.v1_pair else [])):
            for name in names:
                try:
                    self.arm(name)
                except KeyError as e:
                    raise ValueError(f"{key}: {e.args[0]}") from None
        return self


def load_config(path: str | Path, out: str | None = None) -> ExperimentConfig:
    return stages.load_yaml_config(ExperimentConfig, path, out, "experiment config")


def validate_stage_configs(cfg: ExperimentConfig) -> None:
    """Load every stage's YAML with its `--set`s through the service's own loader, as its CLI will."""
    from ingest.objects_data import look_from_json
    from trainer.config import load_config as load_trainer

    look_from_json(json.dumps(cfg.data.look))
    probe = ["data.path=x", "run.name=x"]
    for arm in cfg.arms:
        load_trainer("pretrain", ROOT / cfg.pretrain.config, [*cfg.pretrain.set, *arm.set, *probe])
    for variant_set in [[], *(v.set for v in cfg.finetune.variants)]:
        load_trainer("postpretrain", ROOT / cfg.finetune.config, [*cfg.finetune.set, *variant_set, *probe])
    load_trainer("evaluate", ROOT / cfg.probes.config, [*cfg.probes.set, *probe])


# ---------------------------------------------------------------------------------------------- process watch
class ProcessWatch(Watch):
    """bench/processes.py's `Watch` over one service command's process tree (peak RSS from the kernel's VmHWM, CPU
    time per process), summed for the results: the Ray Train worker (`ray::RayTrainWorker...` titles) is the training
    process; data tasks run elsewhere. Sampled every 2 s: a scan of the tree costs CPU that the run itself needs (at
    0.5 s the sampler took ~20 % of a core beside a training run), and CPU time is cumulative, so only the last
    interval of a process can go unseen."""

    def __init__(self, root_pid: int, interval: float = 2.0):
        super().__init__(pid=root_pid, interval=interval)

    def summary(self) -> dict:
        workers = [r for r in self.seen.values() if any("RayTrainWorker" in t for t in r["roles"])]
        return {"train_worker_cpu_s": sum(r["cpu_s"] for r in workers) if workers else None,
                "train_worker_peak_rss_mb": max((r["hwm"] for r in workers), default=None),
                "all_processes_cpu_s": sum(r.get("cpu_s", 0.0) for r in self.seen.values()),
                "train_workers_found": len(workers)}


# ---------------------------------------------------------------------------------------------- stages
class Experiment:
    """The paths of one experiment directory and the stages that fill it."""

    def __init__(self, cfg: ExperimentConfig):
        self.cfg = cfg
        self.out = cfg.out_dir
        self.data, self.runs, self.results = self.out / "data", self.out / "runs", self.out / "results"
        self.shards = self.out / "shards"
        self.runner = stages.Runner(self.out)
        self.results.mkdir(parents=True, exist_ok=True)

    def run(self, name: str, cmd: list[str], watch: bool = False) -> dict:
        """One service command (logs/<name>.log); with `watch`, the CPU and memory of its processes."""
        return self.runner.run(Stage(name, cmd), ProcessWatch if watch else None)

    def done(self, name: str) -> dict | None:
        path = self.results / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def record(self, name: str, result: dict) -> dict:
        (self.results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        return result

    # ------------------------------------------------------------------ data
    def data_stage(self) -> None:
        if self.done("data"):
            return
        timings = {"generate": self.run("generate", self.cfg.data.command(self.data))}
        ingest = [sys.executable, "-m", "ingest", "--config", str(self.data / "ingest.yaml"),
                  *set_args([f"output={self.shards}", *self.cfg.ingest])]
        timings["ingest"] = self.run("ingest", ingest)
        manifest = json.loads((self.shards / "manifest.json").read_text())
        self.record("data", {"timings": timings, "shards": str(self.shards), "generator": self.cfg.data.model_dump(),
                             "manifest": manifest})

    # ------------------------------------------------------------------ pre-training arms
    def pretrain_stage(self, only_arms: list[str] | None) -> None:
        from trainer.config import PretrainConfig
        from trainer.metrics import read_metrics
        from videomae.flops import masked_pretrain_flops

        for arm in self.cfg.arms:
            if only_arms and arm.name not in only_arms:
                continue
            for seed in arm.seeds:
                name = f"pretrain-{arm.name}-s{seed}"
                if self.done(name):
                    continue
                sets = [*self.cfg.pretrain.set, *arm.set, f"data.path={self.shards}", f"run.storage_path={self.runs}",
                        f"run.name={name}", f"run.seed={seed}"]
                result = self.run(name, [sys.executable, "trainer/pretrain.py", "--config", self.cfg.pretrain.config,
                                         *set_args(sets)], watch=True)
                tcfg = PretrainConfig.model_validate(_yaml(self.runs / name / "config.yaml"))
                rows = read_metrics(str(self.runs / name))
                flops = masked_pretrain_flops(tcfg.model.architecture(), tcfg.mask)
                self.record(name, {"arm": arm.name, "seed": seed, "run_dir": str(self.runs / name),
                                   "mask": tcfg.mask.model_dump(), "preset": tcfg.model.preset,
                                   "architecture": tcfg.model.architecture().to_json_dict(),
                                   "flops_per_clip": flops.as_dict(), "steps": rows[-1]["step"] if rows else None,
                                   "epochs": rows[-1]["epoch"] if rows else None,
                                   "rows_per_step": tcfg.data.batch_size * tcfg.data.num_sample, **result})

    def model_dir(self, arm: str, seed: int) -> Path:
        seeds = self.cfg.arm(arm).seeds
        return self.runs / f"pretrain-{arm}-s{seed if seed in seeds else seeds[0]}" / "model"

    # ------------------------------------------------------------------ fine-tune: pre-trained vs scratch
    def finetune_stage(self) -> None:
        ft = self.cfg.finetune
        # seed by seed, the scratch run right after the pre-trained ones: a run cut short still has pairs
        scratch = ft.scratch_seeds or ft.seeds
        units = []  # (unit name, init, seed, init_from, variant or None)

        def unit(init: str, seed: int, variant: FinetuneVariant | None = None) -> tuple:
            model = "null" if init == "scratch" else str(self.model_dir(init, seed))
            return (f"finetune-{init}{'-' + variant.name if variant else ''}-s{seed}", init, seed, model, variant)

        for seed in sorted(set(ft.seeds) | set(scratch)):
            units += [unit(arm, seed) for arm in ft.from_arms if seed in ft.arm_seeds.get(arm, ft.seeds)
                      and (ft.one_model_per_arm or seed in self.cfg.arm(arm).seeds)]
            units += [unit("scratch", seed)] if seed in scratch else []
        units += [unit(init, seed, v) for v in ft.variants for seed in v.seeds for init in v.inits]
        for name, init, seed, init_from, variant in units:
            if self.done(name):
                continue
            if init_from != "null" and not Path(init_from).exists():
                log.warning("%s: skipped for now, no pre-trained model at %s (run its pretrain arm first)", name,
                            init_from)
                continue
            sets = [*ft.set, *(variant.set if variant else []), f"data.path={self.shards}",
                    f"run.storage_path={self.runs}", f"run.name={name}", f"run.seed={seed}",
                    f"model.init_from={init_from}"]
            result = self.run(name, [sys.executable, "trainer/postpretrain.py", "--config", ft.config,
                                     *set_args(sets)], watch=True)
            self.record(name, {"init": init, "seed": seed, "init_from": init_from, "run_dir": str(self.runs / name),
                               "variant": variant.name if variant else None, **result})

    # ------------------------------------------------------------------ frozen features: k-NN, linear probe
    def random_model(self, seed: int) -> Path:
        """A randomly initialised pre-training model of the experiment's architecture (torch seed `seed`, as the
        trainer seeds before it builds the model), saved once."""
        path = self.runs / f"random-init-s{seed}" / "model"
        if not path.exists():
            import torch

            from trainer.config import load_config as load_trainer
            from videomae.model import VideoMAEPretrain

            tcfg = load_trainer("pretrain", ROOT / self.cfg.pretrain.config,
                                [*self.cfg.pretrain.set, "data.path=x", "run.name=x"])
            torch.manual_seed(seed)
            VideoMAEPretrain(tcfg.model.architecture()).save(path)
        return path

    def models(self) -> dict[str, Path]:
        """Every pre-trained model (arm-seed) that exists, plus the random-init encoders (random-s<k>)."""
        out = {f"{a.name}-s{s}": self.model_dir(a.name, s) for a in self.cfg.arms for s in a.seeds
               if self.model_dir(a.name, s).exists()}
        out.update({f"random-s{k}": self.random_model(k) for k in self.cfg.probes.random_seeds})
        return out

    def probes_stage(self) -> None:
        pr = self.cfg.probes
        for key, model in self.models().items():
            name = f"probes-{key}"
            if self.done(name):
                continue
            seed = int(key.rsplit("-s", 1)[1])
            sets = [*pr.set, f"data.path={self.shards}", f"run.storage_path={self.runs}", f"run.name={name}",
                    f"run.seed={seed}", f"model.init_from={model}"]
            result = self.run(name, [sys.executable, "trainer/evaluate.py", "--config", pr.config, *set_args(sets)])
            scores = json.loads((self.runs / name / "eval_probes.json").read_text())
            self.record(name, {"model": key, "seed": seed, **scores, **result})

    # ------------------------------------------------------------------ held-out reconstruction
    def recon_stage(self) -> None:
        if self.done("recon"):
            return
        models = self.models()
        r = self.cfg.recon
        result = experiments_report.heldout_reconstruction(models, str(self.shards), r.seed, r.max_clips)
        shown = {k: v for k, v in models.items() if k in (self.cfg.headline.publish_model, "random-s0")}
        picture = experiments_report.reconstruction_picture(shown, str(self.shards), r.seed, r.picture_clips,
                                                            self.results / "reconstruction.png")
        self.record("recon", {**result, "picture": str(picture)})

    # ------------------------------------------------------------------ step cost, one fresh process per setting
    def stepcost_stage(self) -> None:
        for sc in self.cfg.step_cost:
            for decoder in sc.decoders:
                name = f"stepcost-{sc.preset}-{decoder}"
                if self.done(name):
                    continue
                self.run(name, [sys.executable, "scripts/experiments_report.py", "step-cost", sc.preset, decoder,
                                str(sc.batch), str(sc.steps), json.dumps(sc.overrides)])
                line = (self.out / "logs" / f"{name}.log").read_text().strip().splitlines()[-1]
                self.record(name, json.loads(line))

    # ------------------------------------------------------------------ report
    def report_stage(self, publish: Path | None) -> dict:
        summary = experiments_report.write_report(self.results, self.cfg.model_dump(), ROOT)
        if publish is not None:
            publish.mkdir(parents=True, exist_ok=True)
            for name in ("results.json", "summary.md", *summary["pictures"]):
                shutil.copy2(self.results / name, publish / name)
            model = self.models().get(self.cfg.headline.publish_model)
            if model is not None:
                if (publish / "model").exists():
                    shutil.rmtree(publish / "model")
                shutil.copytree(model, publish / "model")
            log.info("copied results.json, summary.md, %d pictures and model %s to %s", len(summary["pictures"]),
                     self.cfg.headline.publish_model, publish)
        return summary


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


# ---------------------------------------------------------------------------------------------- main
def run(cfg: ExperimentConfig, parts: list[str], arms: list[str] | None, fresh: bool,
        publish: Path | None) -> dict | None:
    if fresh and cfg.out_dir.exists():
        log.info("removing the previous outputs in %s", cfg.out_dir)
        shutil.rmtree(cfg.out_dir)
    exp = Experiment(cfg)
    log.info("experiments -> %s (parts: %s)", exp.out, ", ".join(parts))
    do = {"data": exp.data_stage, "pretrain": lambda: exp.pretrain_stage(arms), "finetune": exp.finetune_stage,
          "probes": exp.probes_stage, "recon": exp.recon_stage, "stepcost": exp.stepcost_stage,
          "report": lambda: exp.report_stage(publish)}
    done = {}
    for part in (p for p in PARTS if p in parts):
        start = time.perf_counter()
        done[part] = do[part]()
        log.info("part %s finished in %.0f s", part, time.perf_counter() - start)
    log.info("done in %.0f s: %s", time.perf_counter() - exp.runner.t0, exp.results)
    return done.get("report")


def main(argv: list[str] | None = None) -> int:
    ap = stages.command_line(__doc__.splitlines()[0], "experiments", "full.yaml")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    ap.add_argument("--arms", default=None, help="pre-training arms to run (default: all in the config)")
    ap.add_argument("--fresh", action="store_true", help="remove the previous outputs of this experiment first")
    ap.add_argument("--publish", default=None, help="copy results.json, summary.md, the PNGs and the model here")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, args.out)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"--only: unknown part(s) {', '.join(unknown)}; parts: {', '.join(PARTS)}")
    arms = [a.strip() for a in args.arms.split(",")] if args.arms else None
    for a in (a for a in arms or [] if a not in {arm.name for arm in cfg.arms}):
        ap.error(f"--arms: no arm {a!r}; arms: {', '.join(arm.name for arm in cfg.arms)}")
    validate_stage_configs(cfg)
    if args.validate:
        log.info("%s: ok", args.config)
        return 0
    run(cfg, parts, arms, args.fresh, Path(args.publish) if args.publish else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
