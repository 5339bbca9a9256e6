"""infra/docker/*.Dockerfile, read statically (no Docker engine here): multi-stage, a CUDA base for the Ray image and
a slim one for the API, a non-root user, ffmpeg in the runtime stage, COPY sources that exist in the build context
(and are not dropped by .dockerignore), and commands/ports that match the code."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from infra_checks import ROOT, check_command

DOCKER = ROOT / "infra" / "docker"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each a list of (INSTRUCTION, arguments) with continuations joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages and op == "ARG":
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


def exec_form(arg: str) -> list[str]:
    return json.loads(arg) if arg.startswith("[") else shlex.split(arg)


def dockerignored(rel: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    return any(fnmatch.fnmatch(rel, p.rstrip("/")) or rel.startswith(p.rstrip("/") + "/") for p in patterns)


@pytest.mark.parametrize("name", ["ray.Dockerfile", "api.Dockerfile"])
def test_multi_stage_non_root_with_ffmpeg(name):
    _, stages = parse(DOCKER / name)
    assert len(stages) >= 2, "multi-stage: build tools stay in the build stage"
    final = stages[-1]
    assert any("--from=" + s.name in c for s in stages[:-1] for c in final.all("COPY")), "runtime copies the build"
    users = final.all("USER")
    assert users and users[-1] not in ("root", "0"), f"{name}: the runtime stage must end as a non-root user"
    assert any("useradd" in r for r in final.all("RUN")), f"{name}: the user is created in the runtime stage"
    installs = " ".join(r for r in final.all("RUN") if "apt-get install" in r)
    assert re.search(r"\bffmpeg\b", installs), f"{name}: ffmpeg must be installed in the runtime stage"
    assert not any("build-essential" in r for r in final.all("RUN")), "compilers belong in the build stage"


def test_bases_cuda_for_ray_slim_for_api():
    _, ray_stages = parse(DOCKER / "ray.Dockerfile")
    _, api_stages = parse(DOCKER / "api.Dockerfile")
    assert ray_stages[-1].base.startswith("nvidia/cuda:") and "runtime" in ray_stages[-1].base
    assert "-slim" in api_stages[-1].base


def test_torch_pins_come_from_constraints():
    # The API image installs torch/torchvision from the CPU index at exactly the pins constraints.txt holds.
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert {"torch", "torchvision"} <= set(pins)
    text = (DOCKER / "api.Dockerfile").read_text()
    assert "constraints.txt" in text and "grep -E '^(torch|torchvision)=='" in text


@pytest.mark.parametrize("name", ["ray.Dockerfile", "api.Dockerfile"])
def test_copy_sources_exist_in_the_context(name):
    _, stages = parse(DOCKER / name)
    for stage in stages:
        for arg in stage.all("COPY"):
            parts = [p for p in shlex.split(arg) if not p.startswith("--")]
            if any(p.startswith("--from") for p in shlex.split(arg)):
                continue
            for src in parts[:-1]:
                if src == ".":
                    continue
                assert (ROOT / src).exists(), f"{name}: COPY {src}: not in the repository"
                assert not dockerignored(src), f"{name}: COPY {src}: excluded by .dockerignore"


def test_dockerignore_keeps_environments_and_data_out():
    for rel in (".venv", ".git", "runs", "data", ".env"):
        assert dockerignored(rel), rel
    for rel in ("videomae", "trainer", "api", "ingest", "configs", "pyproject.toml", "constraints.txt"):
        assert not dockerignored(rel), rel


def test_commands_and_ports_match_the_code():
    from api.settings import Settings

    _, ray_stages = parse(DOCKER / "ray.Dockerfile")
    ray_final = ray_stages[-1]
    exposed = {int(p) for e in ray_final.all("EXPOSE") for p in e.split()}
    assert {6379, 8265, 10001, 52365, 6006} <= exposed
    assert exec_form(ray_final.all("CMD")[-1])[:3] == ["ray", "start", "--head"]
    assert ray_final.all("WORKDIR")[-1] == "/app"  # job entrypoints run scripts by path from here

    _, api_stages = parse(DOCKER / "api.Dockerfile")
    api_final = api_stages[-1]
    port = Settings.model_fields["port"].default
    assert {int(p) for e in api_final.all("EXPOSE") for p in e.split()} == {port}
    cmd = exec_form(api_final.all("CMD")[-1])
    assert check_command(cmd) == "uvicorn api.main:app"
    assert cmd[cmd.index("--port") + 1] == str(port)
    assert f"127.0.0.1:{port}/livez" in api_final.all("HEALTHCHECK")[-1]


@pytest.mark.parametrize("name", ["ray.Dockerfile", "api.Dockerfile"])
def test_builds_offline_with_the_builtin_frontend(name):
    # A `# syntax=` directive makes BuildKit pull that frontend image from a registry: the build fails where none is
    # reachable. Without it the engine's built-in frontend (Docker >= 20.10) reads these files, cache mounts too.
    first = (DOCKER / name).read_text().splitlines()[0]
    assert not re.match(r"#\s*syntax\s*=", first, re.I), f"{name}: {first}"


def test_torch_from_one_build_arg_and_one_shared_pip_cache():
    # Both images take torch from TORCH_INDEX (empty: pip's default index) and download through the same BuildKit
    # cache mount, locked, so that building both downloads each wheel once.
    mounts = set()
    for name in ("ray.Dockerfile", "api.Dockerfile"):
        text = (DOCKER / name).read_text()
        assert re.search(r"^ARG TORCH_INDEX=", text, re.M), name
        assert '${TORCH_INDEX:+--index-url "$TORCH_INDEX"}' in text, name
        runtime = parse(DOCKER / name)[1][-1]
        downloads = [r for r in runtime.all("RUN") if "pip install" in r and "--no-deps" not in r]  # torch, the rest
        assert len(downloads) == 2 and all("--mount=type=cache" in r and "sharing=locked" in r for r in downloads), name
        mounts |= {re.search(r"--mount=(\S+)", r).group(1) for r in downloads}
    assert mounts == {"type=cache,target=/root/.cache/pip,sharing=locked"}
