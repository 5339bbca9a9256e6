"""infra/kuberay/*.yaml against the object schemas (Kubernetes built-ins through kubernetes-validate's strict
schemas; RayCluster/RayJob through KubeRay's CRD schema, their pod templates through Kubernetes' PodTemplateSpec)
and against the code: entrypoints and configs that exist and validate, GPU counts that match the training config,
token auth, images built by our Dockerfiles, ports, probes and VIDEOMAE_* variables the API reads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from infra_checks import (
    ROOT,
    check_command,
    kuberay_validator,
    load_yaml,
    load_yaml_docs,
    pod_templates,
    validate_config,
    validate_k8s,
    validate_k8s_definition,
)

pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (the test extra) checks Kubernetes objects")

KUBERAY = ROOT / "infra" / "kuberay"
RAY_KINDS = {"RayCluster", "RayJob"}


def manifests() -> list[tuple[str, dict]]:
    return [(f"{p.name}:{d['kind']}/{d['metadata']['name']}", d) for p in sorted(KUBERAY.glob("*.yaml"))
            for d in load_yaml_docs(p)]


def by_kind(kind: str) -> list[dict]:
    return [d for _, d in manifests() if d["kind"] == kind]


def containers(template: dict) -> list[dict]:
    return template["spec"]["containers"]


def compose_images() -> set[str]:
    services = load_yaml(ROOT / "docker-compose.yml")["services"]
    return {re.sub(r"^\$\{\w+:-(.*)\}$", r"\1", s["image"]).split(":")[0] for s in services.values() if "build" in s}


@pytest.mark.parametrize(("where", "obj"), manifests(), ids=[w for w, _ in manifests()])
def test_object_is_valid_for_its_schema(where, obj):
    if obj["kind"] in RAY_KINDS:
        assert obj["apiVersion"] == "ray.io/v1"
        errors = list(kuberay_validator(obj["kind"]).iter_errors(obj))
        assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
        for path, template in pod_templates(obj):
            try:
                validate_k8s_definition(template, "io.k8s.api.core.v1.PodTemplateSpec")
            except Exception as e:  # noqa: BLE001 - re-raised with the template's path
                raise AssertionError(f"{where} {path}: {e}") from None
    else:
        validate_k8s(obj)


def test_schema_checks_catch_typos():
    # Each validator must reject what kubectl would: an unknown CRD field, an unknown container field.
    cluster = by_kind("RayCluster")[0]
    bad = {**cluster, "spec": {**cluster["spec"], "headGroupSpecs": {}}}
    assert any("headGroupSpecs" in e.message for e in kuberay_validator("RayCluster").iter_errors(bad))
    template = cluster["spec"]["headGroupSpec"]["template"]
    bad_template = {**template, "spec": {**template["spec"], "containers": [{**containers(template)[0], "imag": "x"}]}}
    with pytest.raises(Exception, match="imag"):
        validate_k8s_definition(bad_template, "io.k8s.api.core.v1.PodTemplateSpec")
    deployment = by_kind("Deployment")[0]
    with pytest.raises(Exception, match="replica"):
        validate_k8s({**deployment, "spec": {**deployment["spec"], "replica": 1}})


def test_ray_resources_use_token_auth_and_our_ray_version():
    import ray

    ray_objects = by_kind("RayCluster") + by_kind("RayJob")
    assert {o["kind"] for o in ray_objects} == RAY_KINDS
    for obj in ray_objects:
        cluster = obj["spec"]["rayClusterSpec"] if obj["kind"] == "RayJob" else obj["spec"]
        assert cluster["authOptions"] == {"mode": "token", "secretName": "videomae-ray-token"}, obj["metadata"]
        assert cluster["rayVersion"] == ray.__version__
        head = cluster["headGroupSpec"]
        ports = {p["containerPort"] for p in containers(head["template"])[0]["ports"]}
        assert ports == {6379, 8265, 10001}  # docs/architecture.md: GCS, dashboard, client
        assert head["rayStartParams"]["num-gpus"] == "0"


def test_rayjobs_run_our_entrypoints_and_clean_up():
    jobs = {j["metadata"]["name"]: j for j in by_kind("RayJob")}
    assert set(jobs) == {"videomae-ingest", "videomae-pretrain-vit-g"}
    assert check_command(jobs["videomae-ingest"]["spec"]["entrypoint"]) == "ingest"
    assert check_command(jobs["videomae-pretrain-vit-g"]["spec"]["entrypoint"]) == "trainer/pretrain.py"
    for job in jobs.values():
        assert job["spec"]["shutdownAfterJobFinishes"] is True
        assert "/shared/" in job["spec"]["entrypoint"]  # outputs on the shared volume, not the pod's disk


def _overrides(entrypoint: str) -> tuple[Path, list[str]]:
    argv = shlex.split(entrypoint)
    return ROOT / argv[argv.index("--config") + 1], [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]


def test_pretrain_job_is_the_reference_vit_g_recipe_on_64_gpus():
    job = next(j for j in by_kind("RayJob") if j["metadata"]["name"] == "videomae-pretrain-vit-g")
    cfg = validate_config("pretrain", *_overrides(job["spec"]["entrypoint"]))
    # OpenGVLab/VideoMAEv2 scripts/pretrain/vit_g_hybrid_pt.sh: 64 GPUs, 32 clips x 4 views per GPU,
    # tube 0.9 + running cell 0.5, lr 6e-4 per 256, clip_grad 0.02, 300 epochs with 30 warmup, checkpointing.
    assert cfg.model.preset == "giant" and cfg.model.grad_checkpointing
    assert (cfg.scaling.num_workers, cfg.scaling.use_gpu) == (64, True)
    assert (cfg.data.batch_size, cfg.data.num_sample, cfg.global_batch) == (32, 4, 2048)
    assert (cfg.mask.encoder, cfg.mask.encoder_ratio, cfg.mask.decoder, cfg.mask.decoder_ratio) == (
        "tube", 0.9, "running_cell", 0.5)
    assert (cfg.optim.lr, cfg.optim.clip_grad, cfg.optim.epochs, cfg.optim.warmup_epochs) == (6e-4, 0.02, 300, 30)
    assert cfg.optim.max_steps is None and cfg.scaling.precision == "bf16"
    assert cfg.data.path == "/shared/datasets/unlabeled_hybrid" and cfg.run.storage_path == "/shared/runs"
    # The cluster has exactly the GPUs the trainer asks for: worker pods x nvidia.com/gpu each.
    gpus = 0
    for group in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]:
        limits = containers(group["template"])[0]["resources"]["limits"]
        gpus += group["replicas"] * int(limits.get("nvidia.com/gpu", 0))
        if "nvidia.com/gpu" in limits:
            tolerations = group["template"]["spec"].get("tolerations", [])
            assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)
            assert float(limits["cpu"]) >= int(limits["nvidia.com/gpu"]) * cfg.scaling.cpus_per_worker
    assert gpus == cfg.scaling.num_workers


def test_ingest_job_uses_cpu_pools_only():
    job = next(j for j in by_kind("RayJob") if j["metadata"]["name"] == "videomae-ingest")
    cfg = validate_config("ingest", *_overrides(job["spec"]["entrypoint"]))
    assert cfg.output.startswith("/shared/")
    for _, template in pod_templates(job):
        assert "nvidia.com/gpu" not in containers(template)[0]["resources"].get("limits", {})


def test_images_volumes_and_security_match_the_rest():
    images = compose_images()
    claims = {d["metadata"]["name"] for d in by_kind("PersistentVolumeClaim")}
    assert claims == {"videomae-shared"}
    templates = [t for o in by_kind("RayCluster") + by_kind("RayJob") for _, t in pod_templates(o)]
    templates += [d["spec"]["template"] for d in by_kind("Deployment")]
    for template in templates:
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] == 1000
        for c in spec["containers"]:
            assert c["image"].split(":")[0] in images, f"{c['image']}: not an image docker-compose.yml builds"
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            assert mounts.get("shared") == "/shared"
        for v in spec["volumes"]:
            if "persistentVolumeClaim" in v:
                assert v["persistentVolumeClaim"]["claimName"] in claims


def test_api_deployment_probes_ports_and_settings():
    from api.main import create_app
    from api.settings import Settings, env_name

    deployment, service = by_kind("Deployment")[0], by_kind("Service")[0]
    template = deployment["spec"]["template"]
    (api,) = containers(template)
    assert check_command(api["command"]) == "api"
    env = {e["name"]: e for e in api["env"]}
    fields = {env_name(f) for f in Settings.model_fields}
    assert set(env) <= fields, f"variables the API does not read: {set(env) - fields}"
    assert "valueFrom" in env["VIDEOMAE_API_KEYS"], "API keys come from a Secret, never a literal"
    values = {k: e.get("value", "k" * 32) for k, e in env.items()}
    settings = Settings.from_env(values)
    assert settings.auth_required and settings.port == 8000
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    assert ports == {"http": settings.port}
    routes = set(create_app(settings).openapi()["paths"])  # FastAPI nests included routers; the schema lists all
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz"), ("startupProbe", "/livez")):
        get = api[probe]["httpGet"]
        assert get["path"] == path and get["path"] in routes, probe
        assert ports.get(get["port"], get["port"]) == settings.port, probe
    # The Service selects these pods and forwards to the named container port.
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    (sp,) = service["spec"]["ports"]
    assert ports[sp["targetPort"]] == sp["port"] == 8000
