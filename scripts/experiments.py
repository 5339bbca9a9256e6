"""A small-scale reproduction of the VideoMAE V2 paper's claims: one command, results under `out`.

    python scripts/experiments.py                      # configs/experiments/full.yaml (~35-40 min on 2 cores)
    python scripts/experiments.py --quick              # configs/experiments/quick.yaml (the CI test runs it)
    python scripts/experiments.py --only pretrain --arms running_cell,none
    python scripts/experiments.py --only report --publish docs/results

Parts (`--only`, comma-separated; default all, in this order). Finished units are kept and skipped on a rerun
(each writes its own JSON); `--fresh` removes the previous outputs first.
  data       python -m ingest.sample_data, then python -m ingest twice: the mix of all sources, and `single_source`
  pretrain   python trainer/pretrain.py once per arm and seed (decoder masking none/running cell/random/frame, one
             source), one Ray run at a time; wall time, CPU time and peak RSS of the Ray Train worker process
  finetune   python trainer/postpretrain.py from the `from_arm` pre-training vs from scratch (claim 1)
  features   python trainer/evaluate.py, k-NN and linear probe on frozen features of every arm and of a randomly
             initialised encoder
  recon      held-out reconstruction loss with fixed masks, and the reconstruction picture (in this process)
  stepcost   training-step CPU time and peak memory per decoder mask, one fresh process each, one torch thread
             (scripts/experiments_report.py step-cost), including ViT-B at the paper's 16 x 224 x 224
  report     results.json, summary.md and the plots; `--publish DIR` copies them (docs/results)

Everything runs through the services' public entry points as subprocesses, each starting its own in-process Ray.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

import yaml
from pydantic import Field, model_validator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # experiments_report and stages, next to this file

import experiments_report  # noqa: E402
import stages  # noqa: E402
from stages import ROOT, Stage, StageConfig, Strict, set_args  # noqa: E402

from bench.processes import Watch  # noqa: E402

log = logging.getLogger("experiments")
PARTS = ("data", "pretrain", "finetune", "features", "recon", "stepcost", "report")


# ---------------------------------------------------------------------------------------------- config
class Arm(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    set: list[str] = Field(default_factory=list)  # after the common pretrain `set`
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    single_source: bool = False  # pre-train on the one-source shards instead of the mix


class Finetune(StageConfig):
    from_arm: str
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)


class Evaluate(Strict):
    knn: str
    linear: str
    set: list[str] = Field(default_factory=list)
    linear_seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)


class Recon(Strict):
    seed: int = 1234  # masks of clip i come from numpy.random.default_rng([seed, i]): the same for every arm
    max_clips: int = Field(200, ge=1)
    picture_clips: int = Field(2, ge=1)


class StepCost(Strict):
    preset: str
    batch: int = Field(1, ge=1)
    steps: int = Field(3, ge=1)
    decoders: list[str] = Field(default_factory=lambda: ["none", "running_cell"], min_length=1)


class ExperimentConfig(stages.SampleRunConfig):
    out: str = "runs/experiments/full"
    single_source: str
    arms: list[Arm] = Field(min_length=1)
    postpretrain: Finetune
    evaluate: Evaluate
    recon: Recon = Field(default_factory=Recon)
    step_cost: list[StepCost] = Field(default_factory=list)

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"no arm {name!r}; arms: {', '.join(a.name for a in self.arms)}")

    @model_validator(mode="after")
    def _known_arm(self) -> ExperimentConfig:
        try:
            self.arm(self.postpretrain.from_arm)
        except KeyError as e:
            raise ValueError(f"postpretrain.from_arm: {e.args[0]}") from None
        return self


def load_config(path: str | Path, out: str | None = None) -> ExperimentConfig:
    return stages.load_yaml_config(ExperimentConfig, path, out, "experiment config")


def validate_stage_configs(cfg: ExperimentConfig) -> None:
    """Load every stage's YAML with its `--set`s through the service's own loader, as its CLI will."""
    from ingest.config import load_config as load_ingest
    from trainer.config import load_config as load_trainer

    load_ingest(ROOT / cfg.ingest.config, cfg.ingest.set)
    probe = ["data.path=x", "run.name=x"]
    for arm in cfg.arms:
        load_trainer("pretrain", ROOT / cfg.pretrain.config, [*cfg.pretrain.set, *arm.set, *probe])
    load_trainer("postpretrain", ROOT / cfg.postpretrain.config, [*cfg.postpretrain.set, *probe])
    for path in (cfg.evaluate.knn, cfg.evaluate.linear):
        load_trainer("evaluate", ROOT / path, [*cfg.evaluate.set, *probe])


# ---------------------------------------------------------------------------------------------- process watch
class ProcessWatch(Watch):
    """bench/processes.py's `Watch` over one service command's process tree (peak RSS from the kernel's VmHWM, CPU
    time per process), summed for the results: the Ray Train worker (`ray::RayTrainWorker...` titles) is the training
    process; data tasks run elsewhere."""

    def __init__(self, root_pid: int, interval: float = 0.5):
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
        self.mix, self.single = self.out / "shards" / "mix", self.out / "shards" / "single"
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
        cfg = self.cfg
        timings = {"sample": self.run("sample", cfg.sample_command(self.data))}
        sources = yaml.safe_load((ROOT / cfg.ingest.config).read_text())["sources"]
        one = [s for s in sources if s["name"] == cfg.single_source]
        if not one:
            raise SystemExit(f"single_source: no source {cfg.single_source!r} (have "
                             f"{', '.join(s['name'] for s in sources)})")
        timings["ingest_mix"] = self.run("ingest_mix", cfg.ingest_command(self.data, self.mix))
        timings["ingest_single"] = self.run("ingest_single", cfg.ingest_command(self.data, self.single,
                                                                                f"sources={json.dumps(one)}"))
        self.record("data", {"timings": timings, "mix": str(self.mix), "single": str(self.single)})

    # ------------------------------------------------------------------ pre-training arms
    def pretrain_stage(self, only_arms: list[str] | None) -> None:
        from videomae.flops import masked_pretrain_flops

        for arm in self.cfg.arms:
            if only_arms and arm.name not in only_arms:
                continue
            for seed in arm.seeds:
                name = f"pretrain-{arm.name}-s{seed}"
                if self.done(name):
                    continue
                shards = self.single if arm.single_source else self.mix
                sets = [*self.cfg.pretrain.set, *arm.set, f"data.path={shards}", f"run.storage_path={self.runs}",
                        f"run.name={name}", f"run.seed={seed}"]
                result = self.run(name, [sys.executable, "trainer/pretrain.py", "--config", self.cfg.pretrain.config,
                                         *set_args(sets)], watch=True)
                resolved = yaml.safe_load((self.runs / name / "config.yaml").read_text())
                from trainer.config import PretrainConfig

                tcfg = PretrainConfig.model_validate(resolved)
                flops = masked_pretrain_flops(tcfg.model.architecture(), tcfg.mask)
                self.record(name, {"arm": arm.name, "seed": seed, "run_dir": str(self.runs / name),
                                   "mask": tcfg.mask.model_dump(), "preset": tcfg.model.preset,
                                   "flops_per_clip": flops.as_dict(), "steps": tcfg.optim.max_steps,
                                   "rows_per_step": tcfg.data.batch_size * tcfg.data.num_sample, **result})

    def model_dir(self, arm: str, seed: int) -> Path:
        return self.runs / f"pretrain-{arm}-s{seed}" / "model"

    # ------------------------------------------------------------------ claim 1: fine-tune vs scratch
    def finetune_stage(self) -> None:
        ft = self.cfg.postpretrain
        src_seed = self.cfg.arm(ft.from_arm).seeds[0]
        for seed in ft.seeds:
            for init in ("pretrained", "scratch"):
                name = f"finetune-{init}-s{seed}"
                if self.done(name):
                    continue
                init_from = str(self.model_dir(ft.from_arm, src_seed)) if init == "pretrained" else "null"
                sets = [*ft.set, f"data.path={self.mix}", f"run.storage_path={self.runs}", f"run.name={name}",
                        f"run.seed={seed}", f"model.init_from={init_from}"]
                result = self.run(name, [sys.executable, "trainer/postpretrain.py", "--config", ft.config,
                                         *set_args(sets)], watch=True)
                self.record(name, {"init": init, "seed": seed, "init_from": init_from,
                                   "run_dir": str(self.runs / name), **result})

    # ------------------------------------------------------------------ frozen features: k-NN, linear probe
    def models(self) -> dict[str, Path]:
        """Every pre-trained model (arm-seed) that exists, plus a randomly initialised encoder."""
        out = {f"{a.name}-s{s}": self.model_dir(a.name, s) for a in self.cfg.arms for s in a.seeds
               if self.model_dir(a.name, s).exists()}
        random_dir = self.runs / "random-init" / "model"
        if not random_dir.exists():
            import torch

            from trainer.config import load_config as load_trainer
            from videomae.model import VideoMAEPretrain

            tcfg = load_trainer("pretrain", ROOT / self.cfg.pretrain.config,
                                [*self.cfg.pretrain.set, "data.path=x", "run.name=x"])
            torch.manual_seed(0)  # the trainer seeds the same way before building the model (run.seed 0)
            VideoMAEPretrain(tcfg.model.architecture()).save(random_dir)
        out["random_init"] = random_dir
        return out

    def features_stage(self) -> None:
        ev = self.cfg.evaluate
        for key, model in self.models().items():
            jobs = [("knn", ev.knn, 0)] + [("linear", ev.linear, s) for s in ev.linear_seeds]
            for mode, config, seed in jobs:
                name = f"eval-{key}-{mode}" + (f"-s{seed}" if mode == "linear" else "")
                if self.done(name):
                    continue
                sets = [*ev.set, f"data.path={self.mix}", f"run.storage_path={self.runs}", f"run.name={name}",
                        f"run.seed={seed}", f"model.init_from={model}"]
                result = self.run(name, [sys.executable, "trainer/evaluate.py", "--config", config, *set_args(sets)])
                scores = json.loads((self.runs / name / f"eval_{mode}.json").read_text())
                self.record(name, {"model": key, "mode": mode, "seed": seed, **scores, **result})

    # ------------------------------------------------------------------ held-out reconstruction
    def recon_stage(self) -> None:
        if self.done("recon"):
            return
        models = {k: v for k, v in self.models().items()}
        r = self.cfg.recon
        result = experiments_report.heldout_reconstruction(models, str(self.mix), r.seed, r.max_clips)
        picture = experiments_report.reconstruction_picture(
            {k: v for k, v in models.items() if k.endswith("-s0") or k == "random_init"}, str(self.mix), r.seed,
            r.picture_clips, self.results / "reconstruction.png")
        self.record("recon", {**result, "picture": str(picture)})

    # ------------------------------------------------------------------ step cost, one fresh process per setting
    def stepcost_stage(self) -> None:
        for sc in self.cfg.step_cost:
            for decoder in sc.decoders:
                name = f"stepcost-{sc.preset}-{decoder}"
                if self.done(name):
                    continue
                self.run(name, [sys.executable, "scripts/experiments_report.py", "step-cost", sc.preset, decoder,
                                str(sc.batch), str(sc.steps)])
                line = (self.out / "logs" / f"{name}.log").read_text().strip().splitlines()[-1]
                self.record(name, json.loads(line))

    # ------------------------------------------------------------------ report
    def report_stage(self, publish: Path | None) -> dict:
        summary = experiments_report.write_report(self.results, self.runs, self.cfg.model_dump(), ROOT)
        if publish is not None:
            publish.mkdir(parents=True, exist_ok=True)
            for name in ("results.json", "summary.md", *summary["pictures"]):
                shutil.copy2(self.results / name, publish / name)
            log.info("copied results.json, summary.md and %d pictures to %s", len(summary["pictures"]), publish)
        return summary


# ---------------------------------------------------------------------------------------------- main
def run(cfg: ExperimentConfig, parts: list[str], arms: list[str] | None, fresh: bool,
        publish: Path | None) -> dict | None:
    if fresh and cfg.out_dir.exists():
        log.info("removing the previous outputs in %s", cfg.out_dir)
        shutil.rmtree(cfg.out_dir)
    exp = Experiment(cfg)
    log.info("experiments -> %s (parts: %s)", exp.out, ", ".join(parts))
    do = {"data": exp.data_stage, "pretrain": lambda: exp.pretrain_stage(arms), "finetune": exp.finetune_stage,
          "features": exp.features_stage, "recon": exp.recon_stage, "stepcost": exp.stepcost_stage,
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
    ap.add_argument("--publish", default=None, help="copy results.json, summary.md and the PNGs to this folder")
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
