"""docker-compose.yml against the Compose Specification schema, and against the code it runs: images from
Dockerfiles that exist, commands and configs that exist and validate, ports and VIDEOMAE_* variables the services
read, Ray token auth on every Ray process, required secrets. Static: no Docker engine needed."""

from __future__ import annotations

import shlex

import pytest
import yaml
from infra_checks import (
    ROOT,
    InterpolationError,
    check_command,
    compose_validator,
    environment,
    healthcheck_port,
    interpolate,
    load_module,
    load_yaml,
    required_variables,
    validate_config,
)

COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {"RAY_AUTH_TOKEN": "t" * 64, "VIDEOMAE_API_KEYS": "k" * 48}


@pytest.fixture(scope="module")
def compose() -> dict:
    return interpolate(load_yaml(COMPOSE), SECRETS)


def ray_start_options() -> set[str]:
    from ray.scripts.scripts import start

    return {opt for p in start.params for opt in p.opts}


def flags(command: list[str]) -> dict[str, str]:
    """`--name=value` / `--name value` / `--flag` of a command line."""
    out, it = {}, iter(command)
    for a in it:
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            out[name] = value if eq else ""
    return out


def test_compose_file_is_valid_compose_spec(compose):
    errors = sorted(compose_validator().iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_check_catches_a_typo(compose):
    # The check is only worth something if it fails: an unknown service key must be reported.
    broken = {**compose, "services": {**compose["services"], "api": {**compose["services"]["api"], "helthcheck": {}}}}
    assert any("helthcheck" in e.message for e in compose_validator().iter_errors(broken))


def test_required_secrets_refuse_to_start_without_values():
    text = COMPOSE.read_text()
    assert {"RAY_AUTH_TOKEN", "VIDEOMAE_API_KEYS"} <= required_variables(text)
    raw = load_yaml(COMPOSE)
    for name in SECRETS:
        env = {k: v for k, v in SECRETS.items() if k != name}
        with pytest.raises(InterpolationError, match=name):
            interpolate(raw, env)
        with pytest.raises(InterpolationError, match=name):  # empty counts as missing (`:?`)
            interpolate(raw, {**env, name: ""})


def test_topology_healthchecks_and_start_order(compose):
    s = compose["services"]
    assert set(s) == {"ray-head", "ray-worker", "jobs", "api", "tensorboard"}
    for name in ("ray-head", "ray-worker", "api", "tensorboard"):  # long-running: compose can tell when ready
        assert "healthcheck" in s[name], name
    assert s["ray-worker"]["depends_on"] == {"ray-head": {"condition": "service_healthy"}}
    assert s["jobs"]["depends_on"]["ray-head"] == {"condition": "service_healthy"}
    assert s["api"]["depends_on"] == {"jobs": {"condition": "service_completed_successfully"}}
    assert s["jobs"]["restart"] == "no"  # one-shot
    devices = s["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "--scale" not in s["ray-worker"]  # scaling is `docker compose up --scale ray-worker=N`
    assert "container_name" not in s["ray-worker"] and "ports" not in s["ray-worker"]  # both would break --scale


def test_one_shared_volume_for_data_and_checkpoints(compose):
    assert set(compose["volumes"]) == {"shared"}
    for name, service in compose["services"].items():
        mounts = [v for v in service["volumes"] if v.split(":")[0] == "shared"]
        assert [m.split(":")[1] for m in mounts] == ["/shared"], name
    assert compose["services"]["api"]["volumes"] == ["shared:/shared:ro"]


def test_ray_token_auth_on_every_ray_process(compose):
    for name in ("ray-head", "ray-worker", "jobs"):
        env = environment(compose["services"][name])
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN"] == SECRETS["RAY_AUTH_TOKEN"], name


def test_ray_commands_ports_and_addresses(compose):
    s = compose["services"]
    known = ray_start_options()
    head = flags(s["ray-head"]["command"])
    worker = flags(s["ray-worker"]["command"])
    for name, fl in (("ray-head", head), ("ray-worker", worker)):
        assert s[name]["command"][:2] == ["ray", "start"], name
        assert set(fl) <= known, f"{name}: ray start has no option(s) {set(fl) - known}"
        assert "--block" in fl, f"{name}: without --block the container exits after starting Ray"
    # DESIGN.md ports: GCS 6379, dashboard/jobs 8265, client 10001.
    assert (head["--port"], head["--dashboard-port"], head["--ray-client-server-port"]) == ("6379", "8265", "10001")
    assert head["--dashboard-host"] == "0.0.0.0" and "--head" in head
    assert {p.rsplit(":", 1)[1] for p in s["ray-head"]["ports"]} == {"8265", "10001"}
    assert healthcheck_port(s["ray-head"]) == 8265
    assert worker["--address"] == "ray-head:6379"
    assert healthcheck_port(s["ray-worker"]) == 52365  # the dashboard agent (ray_constants default)
    from ray._private.ray_constants import DEFAULT_DASHBOARD_AGENT_LISTEN_PORT

    assert DEFAULT_DASHBOARD_AGENT_LISTEN_PORT == 52365
    assert environment(s["jobs"])["RAY_ADDRESS"] == "http://ray-head:8265"
    tb = flags(s["tensorboard"]["command"])
    assert tb["--port"] == "6006" and s["tensorboard"]["ports"][0].endswith(":6006")
    assert healthcheck_port(s["tensorboard"]) == 6006


def test_api_service_matches_the_settings_it_reads(compose):
    from api.settings import Settings, env_name

    api = compose["services"]["api"]
    env = environment(api)
    fields = {env_name(f) for f in Settings.model_fields}
    assert set(env) <= fields, f"variables the API does not read: {set(env) - fields}"
    settings = Settings.from_env(env)  # the values compose passes make a valid, safe configuration
    assert settings.auth_required and settings.host == "0.0.0.0"
    assert settings.port == Settings.model_fields["port"].default == 8000  # DESIGN.md: API 8000
    assert api["ports"][0].rsplit(":", 1)[1] == str(settings.port)
    assert healthcheck_port(api) == settings.port
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    assert check_command(api["command"]) == "api"


def test_images_build_from_dockerfiles_that_exist(compose):
    # One build per image: the Ray image is built by ray-head alone (a build on each of its four services would build
    # it four times, and an override on one of them would make the four differ); the other services name the image.
    built = {}
    for name, service in compose["services"].items():
        if "build" not in service:
            continue
        build = service["build"]
        dockerfile = ROOT / build["context"] / build["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        assert (ROOT / build["context"]).resolve() == ROOT  # the context is the repository (COPY paths below)
        assert service["image"] not in built, f"{name}: image {service['image']} built by two services"
        built[service["image"]] = dockerfile
    assert {p.name for p in built.values()} == {"ray.Dockerfile", "api.Dockerfile"}
    for name, service in compose["services"].items():
        assert service["image"] in built, f"{name}: image {service['image']} is built by no service"
    # Build args pass through from the environment (stand-in bases, a torch index); unset, the Dockerfile's default.
    assert set(compose["services"]["ray-head"]["build"]["args"]) == {"CUDA_IMAGE", "TORCH_INDEX"}
    assert set(compose["services"]["api"]["build"]["args"]) == {"PYTHON_IMAGE", "TORCH_INDEX"}


def test_ports_are_published_on_loopback_by_default(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port} listens beyond this machine by default"
    opened = interpolate(load_yaml(COMPOSE), {**SECRETS, "PUBLISH_ADDRESS": "0.0.0.0"})
    assert opened["services"]["api"]["ports"] == ["0.0.0.0:8000:8000"]


def test_every_python_command_exists(compose):
    s = compose["services"]
    assert check_command(s["jobs"]["command"]) == "infra/jobs/pipeline.py"
    import shutil

    assert shutil.which("tensorboard", path=str(ROOT / ".venv" / "bin")) or shutil.which("tensorboard")


def test_jobs_submit_stages_that_exist_and_validate(compose):
    """The jobs service's pipeline, with the environment compose gives it: every `ray job submit` entrypoint is a
    module/script of this repository and its config + overrides validate with the service's loader."""
    pipeline = load_module(ROOT / "infra/jobs/pipeline.py", "pipeline")
    settings = pipeline.Settings.from_env(environment(compose["services"]["jobs"]))
    assert settings.storage == "/shared" and settings.use_gpu
    ran = [check_command(stage.command) for stage in pipeline.stages(settings)]
    assert ran == ["ingest.sample_data", "ingest", "trainer/pretrain.py", "trainer/postpretrain.py"]
    for stage in pipeline.stages(settings):
        assert stage.done_marker.startswith("/shared/"), stage  # outputs on the shared volume
        if stage.name in ("pretrain", "postpretrain"):
            joined = shlex.join(stage.command)
            assert "scaling.use_gpu=true" in joined and "run.storage_path=/shared/runs" in joined
    assert compose["services"]["api"]["environment"]["VIDEOMAE_MODEL"] == "/shared/runs/pretrain/model"


# ---------------------------------------------------------------------------------------------- the CPU override
CPU = ROOT / "docker-compose.cpu.yml"
_RESET = object()


class _ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's `!reset` tag (the key is dropped from the merged result)."""


_ComposeLoader.add_constructor("!reset", lambda loader, node: _RESET)


def merge(base, override):
    """Compose's merge of an override file, for the keys used here: mappings merge key by key (environment too),
    `!reset` removes, everything else (command lists, scalars) is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            if v is _RESET:
                out.pop(k, None)
            else:
                out[k] = merge(base.get(k), v)
        return out
    return override


@pytest.fixture(scope="module")
def cpu_compose() -> dict:
    merged = merge(yaml.safe_load(COMPOSE.read_text()), yaml.load(CPU.read_text(), Loader=_ComposeLoader))
    return interpolate(merged, SECRETS)


def test_cpu_override_is_a_valid_compose_spec(cpu_compose):
    errors = sorted(compose_validator().iter_errors(cpu_compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
    assert set(cpu_compose["services"]) == {"ray-head", "ray-worker", "jobs", "api", "tensorboard"}


def test_cpu_override_reserves_no_gpu_and_keeps_compute_off_the_head(compose, cpu_compose):
    worker = cpu_compose["services"]["ray-worker"]
    assert not worker.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    assert "gpu" not in str(cpu_compose).lower().replace("num-gpus=0", "").replace("use_gpu", "")
    # The head command is docker-compose.yml's with --num-cpus=0: it must not drift from it otherwise.
    base, cpu = compose["services"]["ray-head"]["command"], cpu_compose["services"]["ray-head"]["command"]
    assert [a for a in cpu if not a.startswith("--num-cpus")] == [a for a in base if not a.startswith("--num-cpus")]
    assert "--num-cpus=0" in cpu
    for name in ("ray-head", "api"):  # CPU torch for both images unless TORCH_INDEX says otherwise
        assert cpu_compose["services"][name]["build"]["args"]["TORCH_INDEX"].endswith("/whl/cpu"), name


def test_cpu_override_runs_small_cpu_stages_that_validate(cpu_compose):
    pipeline = load_module(ROOT / "infra/jobs/pipeline.py", "pipeline")
    settings = pipeline.Settings.from_env(environment(cpu_compose["services"]["jobs"]))
    assert not settings.use_gpu and settings.sample_preset == "small"
    stages = pipeline.stages(settings)
    assert [check_command(stage.command) for stage in stages] == [
        "ingest.sample_data", "ingest", "trainer/pretrain.py", "trainer/postpretrain.py"]
    from ingest.sample_data import PRESETS

    assert settings.sample_preset in PRESETS
    for stage in stages:
        if stage.name == "pretrain":
            cfg = validate_config("pretrain", ROOT / settings.pretrain_config, [
                a for i, a in enumerate(stage.command) if i and stage.command[i - 1] == "--set"])
            # The fault test kills a worker mid-run: it needs a checkpoint before the end and a retry left.
            assert cfg.model.preset == "nano" and not cfg.scaling.use_gpu
            assert 2 * cfg.run.checkpoint_every < cfg.optim.max_steps and cfg.run.max_failures >= 1
