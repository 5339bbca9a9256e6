"""Submit the pipeline to a Ray cluster, one `ray job submit` per stage: sample videos (optional) -> ingest ->
pre-train (dual masking) -> post-pre-train. Each stage waits for the previous one; a stage whose output already
exists is skipped, so re-running resumes the pipeline (and Ray Train resumes a stage cut off mid-run: same
`run.name` + `run.storage_path`).

    RAY_ADDRESS=http://HEAD:8265 RAY_AUTH_MODE=token RAY_AUTH_TOKEN=... python infra/jobs/pipeline.py
    python infra/jobs/pipeline.py --dry-run          # print the commands only

The `jobs` service of docker-compose.yml runs this; with infra/local/start.sh, `source runs/local/env.sh` first.
Settings come from PIPELINE_* variables (below); every path may be a local/NFS path or a URI (s3://, gs://).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# The stage runner lives in scripts/, which no install ships: the `jobs` container (and any machine that submits the
# pipeline's `ray job submit` stages) runs this file from the tree, so the runner is imported from its folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from stages import ROOT, Runner, Stage, set_args  # noqa: E402

log = logging.getLogger("pipeline")


@dataclass(frozen=True)
class Settings:
    storage: str  # datasets/, runs/ and sample/ live under it
    sample_data: bool  # generate the sample videos first and point the ingest config's `root` at them
    sample_preset: str  # ingest/sample_data.py PRESETS: small, medium, default
    ingest_config: str
    pretrain_config: str
    postpretrain_config: str
    num_workers: int
    use_gpu: bool

    @classmethod
    def from_env(cls, env=os.environ) -> Settings:
        def flag(name: str, default: str) -> bool:
            value = env.get(name, default).strip().lower()
            if value not in ("true", "false", "1", "0", "yes", "no"):
                raise SystemExit(f"{name}={value!r}: expected true or false")
            return value in ("true", "1", "yes")

        return cls(
            storage=env.get("PIPELINE_STORAGE", "/shared").rstrip("/"),
            sample_data=flag("PIPELINE_SAMPLE_DATA", "true"),
            sample_preset=env.get("PIPELINE_SAMPLE_PRESET", "default"),
            ingest_config=env.get("PIPELINE_INGEST_CONFIG", "configs/ingest/sample.yaml"),
            pretrain_config=env.get("PIPELINE_PRETRAIN_CONFIG", "configs/pretrain/tiny.yaml"),
            postpretrain_config=env.get("PIPELINE_POSTPRETRAIN_CONFIG", "configs/postpretrain/tiny.yaml"),
            num_workers=int(env.get("PIPELINE_NUM_WORKERS", "1")),
            use_gpu=flag("PIPELINE_USE_GPU", "false"),
        )

    @property
    def dataset(self) -> str:
        return f"{self.storage}/datasets/{Path(self.ingest_config).stem}"

    @property
    def runs(self) -> str:
        return f"{self.storage}/runs"


def stages(s: Settings) -> list[Stage]:
    scaling = [f"scaling.num_workers={s.num_workers}", f"scaling.use_gpu={str(s.use_gpu).lower()}"]
    pretrain_model = f"{s.runs}/pretrain/model"
    # With sample data, the ingest config's relative source paths (data/sample's files) resolve in the generated tree.
    ingest_sets = [f"output={s.dataset}", *([f"root={s.storage}/sample"] if s.sample_data else [])]
    out = []
    if s.sample_data:
        out.append(Stage("sample", ["python", "-m", "ingest.sample_data", f"{s.storage}/sample", "--preset",
                                    s.sample_preset], f"{s.storage}/sample/planted.json"))
    out.append(Stage("ingest", ["python", "-m", "ingest", "--config", s.ingest_config, *set_args(ingest_sets)],
                     f"{s.dataset}/manifest.json"))
    out.append(Stage("pretrain", ["python", "trainer/pretrain.py", "--config", s.pretrain_config, *set_args([
        f"data.path={s.dataset}", f"run.storage_path={s.runs}", "run.name=pretrain", *scaling])],
        f"{pretrain_model}/config.json"))
    out.append(Stage("postpretrain", ["python", "trainer/postpretrain.py", "--config", s.postpretrain_config,
                                      *set_args([f"data.path={s.dataset}", f"model.init_from={pretrain_model}",
                                                 f"run.storage_path={s.runs}", "run.name=postpretrain", *scaling])],
                     f"{s.runs}/postpretrain/model/config.json"))
    return out


def ray_job_submit(stage: Stage) -> list[str]:
    # `ray job submit` blocks until the job ends and exits non-zero when it fails; --working-dir ships this tree
    # (code and configs) to the cluster, so scripts run by path as from the repository root.
    return ["ray", "job", "submit", "--working-dir", str(ROOT),
            "--submission-id", f"videomae-{stage.name}-{int(time.time())}", "--", *stage.command]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="print the ray job submit commands, run nothing")
    ap.add_argument("--only", choices=["sample", "ingest", "pretrain", "postpretrain"], action="append",
                    help="run only these stages (repeatable)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not os.environ.get("RAY_ADDRESS") and not args.dry_run:
        log.error("RAY_ADDRESS is not set: point it at the cluster's dashboard (http://HEAD:8265)")
        return 2
    settings = Settings.from_env()
    runner = Runner(out=None, launch=ray_job_submit, dry_run=args.dry_run, env=dict(os.environ))
    for stage in stages(settings):
        if args.only and stage.name not in args.only:
            continue
        try:
            runner.run(stage)  # skipped when its output exists already
        except subprocess.CalledProcessError as e:
            log.error("%s: job failed (exit %d); logs: ray job logs <submission id>", stage.name, e.returncode)
            return 1
    log.info("pipeline done: dataset %s, models under %s", settings.dataset, settings.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
