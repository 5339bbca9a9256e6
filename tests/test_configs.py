"""Every YAML under configs/ loads and validates through its service's own loader, and opens with the command
that runs it (configs explain themselves)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from trainer.config import RECIPES

REPO = Path(__file__).resolve().parents[1]
ALL = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "configs").rglob("*.yaml"))
SCRIPT_LOADERS = {"demo": "demo", "experiments": "experiments"}  # configs/<folder>/ -> scripts/<name>.py


def _load(rel: str):
    folder = rel.split("/")[1]
    if folder in RECIPES:
        from trainer.config import load_config

        return load_config(folder, REPO / rel)
    if folder == "extract":
        from trainer.extraction.config import load_config

        return load_config(REPO / rel)
    if folder == "ingest":
        from ingest.config import load_config

        return load_config(REPO / rel)
    if folder in SCRIPT_LOADERS:
        # scripts/<name>.py are plain scripts, not a package: load them by path, with their folder on sys.path for
        # their sibling modules, as `python scripts/...` does.
        if str(REPO / "scripts") not in sys.path:
            sys.path.insert(0, str(REPO / "scripts"))
        name = SCRIPT_LOADERS[folder]
        spec = importlib.util.spec_from_file_location(f"{name}_script", REPO / "scripts" / f"{name}.py")
        script = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = script  # pydantic resolves the module's postponed annotations through it
        spec.loader.exec_module(script)
        cfg = script.load_config(REPO / rel)
        script.validate_stage_configs(cfg)  # each stage's YAML + --set through its service's loader
        return cfg
    if folder == "api":
        import yaml

        from api.settings import Settings

        return Settings(**(yaml.safe_load((REPO / rel).read_text()) or {}))
    pytest.fail(f"{rel}: no loader known for configs/{folder}/ (add one to tests/test_configs.py)")


def test_there_are_configs():
    assert any(r.startswith("configs/pretrain/") for r in ALL) and any(r.startswith("configs/ingest/") for r in ALL)


@pytest.mark.parametrize("rel", ALL)
def test_config_validates(rel):
    assert _load(rel) is not None


@pytest.mark.parametrize("rel", ALL)
def test_config_opens_with_its_command(rel):
    first = (REPO / rel).read_text().splitlines()[0]
    assert first.startswith("# ") and ("python" in first or "ray job submit" in first or "make" in first), first
    if rel.split("/")[1] in RECIPES:
        assert rel in first, f"{rel}: the opening command should name this file: {first}"


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_has_its_script_and_configs(name):
    from trainer.config import recipe_script

    assert (REPO / recipe_script(name)).is_file()
    assert sorted((REPO / "configs" / name).glob("*.yaml")), f"configs/{name}/ holds no config"
