"""What the infra tests share: loading the manifests, Compose variable interpolation, the schemas, and the
cross-checks of a command line against the code (a `python -m` module, a script, a config that must validate with
its service's own loader, a `uvicorn module:attr`).

No Docker engine or Kubernetes cluster is needed: everything here is static, against the real schemas and the real
config loaders, so a renamed module, a removed config key or a typo in a manifest fails a test.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
import sys
from functools import cache
from pathlib import Path

import jsonschema
import yaml

from trainer.config import RECIPES, recipe_script

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).resolve().parent / "schemas"
K8S_VERSION = "1.33"  # the oldest Kubernetes release the manifests promise to apply on


# ---------------------------------------------------------------------------------------------- loading
def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def load_yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def load_module(path: Path, name: str):
    """Import a repository file that is not in a package (infra/jobs/pipeline.py) by path."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------- compose
class InterpolationError(ValueError):
    pass


# The Compose Specification's interpolation grammar (compose-spec/compose-go template.go): `$$` escapes, `$NAME`,
# `${NAME}`, `${NAME:-default}` / `${NAME-default}`, `${NAME:?error}` / `${NAME?error}`, `${NAME:+alt}` / `${NAME+alt}`;
# any other `$` is an invalid template, which `docker compose` refuses.
_TEMPLATE = re.compile(r"\$(?:(?P<escaped>\$)|(?P<named>[_A-Za-z][_A-Za-z0-9]*)|\{(?P<braced>[^}]*)\}|(?P<invalid>))")
_BRACED = re.compile(r"^(?P<name>[_A-Za-z][_A-Za-z0-9]*)(?:(?P<op>:?[-+?])(?P<arg>.*))?$", re.S)


def interpolate_str(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        if m.group("braced") is None:
            raise InterpolationError(f"invalid interpolation format in {text!r}")
        b = _BRACED.match(m.group("braced"))
        if not b:
            raise InterpolationError(f"invalid interpolation format in {text!r}")
        name, op, arg = b.group("name"), b.group("op"), b.group("arg")
        value = env.get(name)
        unset_or_empty = not value if op and op.startswith(":") else value is None
        if op is None:
            return value or ""
        if op.endswith("-"):
            return interpolate_str(arg, env) if unset_or_empty else value
        if op.endswith("+"):
            return "" if unset_or_empty else interpolate_str(arg, env)
        if unset_or_empty:  # `?`: a required variable
            raise InterpolationError(f"required variable {name} is missing a value: {arg}")
        return value

    return _TEMPLATE.sub(sub, text)


def interpolate(node, env: dict[str, str]):
    """Interpolate every string value of a loaded compose file (keys are not interpolated, as in Compose)."""
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if isinstance(node, str):
        return interpolate_str(node, env)
    return node


def required_variables(text: str) -> set[str]:
    """Names used as `${NAME:?...}` / `${NAME?...}` in a compose file."""
    return set(re.findall(r"\$\{([_A-Za-z][_A-Za-z0-9]*):?\?", text))


@cache
def compose_validator() -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / "compose_spec.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def environment(service: dict) -> dict[str, str]:
    """A service's `environment` as a dict (Compose allows a mapping or a list of NAME=value)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def healthcheck_port(service: dict) -> int:
    test = service["healthcheck"]["test"]
    text = " ".join(test) if isinstance(test, list) else test
    m = re.search(r"https?://(?:127\.0\.0\.1|localhost):(\d+)/", text)
    assert m, f"healthcheck has no local URL: {text}"
    return int(m.group(1))


# ---------------------------------------------------------------------------------------------- kubernetes
@cache
def _k8s_definitions() -> dict:
    from importlib import resources

    base = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    version = max((p.name for p in base.iterdir() if p.name.startswith(f"v{K8S_VERSION}.") and
                   p.name.endswith("-local-strict")), default=None)
    assert version, f"kubernetes-validate has no strict schemas for Kubernetes {K8S_VERSION}"
    return json.loads(base.joinpath(version, "_definitions.json").read_text())


def validate_k8s(obj: dict) -> None:
    """A built-in Kubernetes object against the strict schema of its kind (unknown fields are errors)."""
    import kubernetes_validate

    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def validate_k8s_definition(obj: dict, definition: str) -> None:
    """An embedded object (a pod template inside a KubeRay resource) against one Kubernetes definition."""
    from referencing import Registry, Resource

    defs = _k8s_definitions()
    registry = Resource.from_contents(defs) @ Registry()
    schema = {"$schema": defs["$schema"], "$ref": f"{defs['$id']}#/$defs/{definition}"}
    jsonschema.Draft202012Validator(schema, registry=registry).validate(obj)


@cache
def kuberay_validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"kuberay_{kind.lower()}_v1.json").read_text())
    return jsonschema.Draft7Validator(schema)


def pod_templates(obj: dict) -> list[tuple[str, dict]]:
    """(path, template) of every pod template in a RayCluster or RayJob."""
    spec = obj["spec"]
    cluster, prefix = (spec.get("rayClusterSpec"), "spec.rayClusterSpec") if obj["kind"] == "RayJob" else (spec, "spec")
    out = []
    if cluster:
        out.append((f"{prefix}.headGroupSpec.template", cluster["headGroupSpec"]["template"]))
        for i, group in enumerate(cluster.get("workerGroupSpecs", [])):
            out.append((f"{prefix}.workerGroupSpecs.{i}.template", group["template"]))
    if "submitterPodTemplate" in spec:
        out.append(("spec.submitterPodTemplate", spec["submitterPodTemplate"]))
    return out


# ---------------------------------------------------------------------------------------------- commands
def _module_path(module: str) -> Path | None:
    parts = module.split(".")
    for candidate in (ROOT.joinpath(*parts, "__main__.py"), ROOT.joinpath(*parts).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def defines_name(path: Path, name: str) -> bool:
    """Whether a module binds `name` at top level (read with ast: importing it could start a server)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == name:
            return True
        if any(isinstance(t, ast.Name) and t.id == name for t in targets if t is not None):
            return True
    return False


_CONFIG_KIND = {"ingest": "ingest", **{recipe_script(name): name for name in RECIPES}}


def check_command(argv: list[str] | str) -> str:
    """Check that a command line runs our code: the module/script exists, and a `--config` with its `--set`s
    validates with the service's own loader. Returns what it ran ("python -m ingest", "trainer/pretrain.py", ...)."""
    if isinstance(argv, str):
        argv = shlex.split(argv)
    argv = list(argv)
    if argv[0] in ("bash", "sh") and argv[1:2] == ["-c"]:
        argv = shlex.split(argv[2])
    if argv[0] == "uvicorn":
        module, _, attr = argv[1].partition(":")
        path = _module_path(module)
        assert path is not None, f"uvicorn target {argv[1]}: no module {module}"
        assert defines_name(path, attr), f"uvicorn target {argv[1]}: {path} binds no {attr}"
        return f"uvicorn {argv[1]}"
    assert argv[0] in ("python", "python3"), f"not a python command: {argv}"
    if argv[1] == "-m":
        module, args = argv[2], argv[3:]
        assert _module_path(module) is not None, f"python -m {module}: no such module in the repository"
        target = module
    else:
        script, args = argv[1], argv[2:]
        assert (ROOT / script).is_file(), f"python {script}: no such file in the repository"
        target = script
    config, overrides = None, []
    it = iter(args)
    for a in it:
        if a == "--config":
            config = next(it)
        elif a == "--set":
            overrides.append(next(it))
    if config is not None:
        assert (ROOT / config).is_file(), f"{target}: --config {config} does not exist"
        kind = _CONFIG_KIND.get(target)
        assert kind, f"{target} takes --config but the test knows no loader for it"
        validate_config(kind, ROOT / config, overrides)
    return target


def validate_config(kind: str, path: Path, overrides: list[str]):
    """Load a config exactly as its CLI does (the service's loader: YAML, `--set` overrides, pydantic)."""
    if kind == "ingest":
        from ingest.config import load_config

        return load_config(path, overrides)
    from trainer.config import load_config

    return load_config(kind, path, overrides)
