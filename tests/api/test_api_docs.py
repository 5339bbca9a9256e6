"""docs/api.md and the service agree: every option, answer key, error tag and setting the docs list exists in the
service, and every one the service has is in the docs. The service side comes from its OpenAPI document (what
FastAPI derives from the routes and schemas), the settings model and the error tags the code raises; the docs side
from the tables and key lists of docs/api.md. A new option, key, tag or variable without a line in the docs (or a
line left behind by a removed one) fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.main import create_app
from api.settings import Settings
from videomae import reasons

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs/api.md").read_text()


@pytest.fixture(scope="module")
def openapi() -> dict:
    return create_app(Settings.from_env({"VIDEOMAE_MODEL": "/not/loaded/by/openapi"})).openapi()


def section(heading: str) -> str:
    """The text under a `## ` or `### ` heading, up to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#+ |\Z)", DOC, flags=re.S | re.M)
    assert match, f"docs/api.md has no section {heading!r}"
    return match.group(1)


def first_column(text: str) -> set[str]:
    """Backticked names in the first cell of each table row (`a`, `b` -> a, b; `X`, `_Y` -> X, X_Y shorthand)."""
    names = set()
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split("|")[1]
        found = re.findall(r"`([^`]+)`", cell)
        for name in found:
            # "`VIDEOMAE_MAX_WIDTH`, `_MAX_HEIGHT`": a leading underscore continues the first name's prefix.
            names.add(found[0].split("_MAX")[0] + name if name.startswith("_") else name)
    return names


def schema_props(openapi: dict, name: str) -> set[str]:
    return set(openapi["components"]["schemas"][name]["properties"])


def endpoints_with_options(openapi: dict) -> dict[str, set[str]]:
    """POST /v1/* routes -> their query parameters."""
    return {path: {p["name"] for p in ops["post"].get("parameters", []) if p["in"] == "query"}
            for path, ops in openapi["paths"].items() if "post" in ops}


def test_every_endpoint_and_its_options_are_documented(openapi):
    posts = endpoints_with_options(openapi)
    aliases = {path for path, ops in openapi["paths"].items() if "aliases" in ops.get("post", {}).get("tags", [])}
    assert aliases == {"/embed", "/reconstruct", "/search"}
    for path, params in posts.items():
        if path in aliases:  # documented once, under its /v1 route ("Unversioned aliases")
            assert params == posts[f"/v1{path}"], path
            assert f"`POST {path}`" in section("Unversioned aliases"), path
            continue
        documented = first_column(section(f"`POST {path}`"))
        assert documented == params, f"{path}: docs {sorted(documented)} vs service {sorted(params)}"
    for path in openapi["paths"]:
        assert f"`{path}`" in DOC or f" {path}`" in DOC, f"{path} is served but not in docs/api.md"


def test_answer_keys_are_documented(openapi):
    embed = section("`POST /v1/embed`")
    answer = embed[embed.index("Answer (JSON)"):]
    answer = answer[:answer.index("\n\n")]
    keys = set(re.findall(r'"(\w+)"', answer))
    assert keys == schema_props(openapi, "EmbedResponse") | schema_props(openapi, "ClipEmbedding")

    rec = section("`POST /v1/reconstruct`")
    json_part = rec[rec.index("JSON (`format=json`)"):]
    json_part = json_part[:json_part.index("\n\n")]
    keys = {k for k in re.findall(r"`(\w+)`", json_part) if k not in ("format", "json", "start")}
    keys -= {"model"}  # "the library's `model(clip, ...)`" is prose, not a key
    assert keys == schema_props(openapi, "ReconstructResponse")

    models = section("`GET /v1/models`")
    keys = set(re.findall(r'"(\w+)":', models)) - {"models"}
    assert keys == schema_props(openapi, "ModelInfo")


def raised_tags() -> dict[str, int]:
    """Every error tag the service answers with, and its status: ApiErrors in the code, the library's reject reasons
    as their declaration maps them, and the handlers' own (unknown path/method, validation, unexpected)."""
    tags: dict[str, int] = {}
    for f in sorted((REPO / "api").rglob("*.py")):
        for status, tag in re.findall(r'ApiError\(\s*(\d{3}),\s*"([a-z_]+)"', f.read_text()):
            tags[tag] = int(status)
    for name, reason in reasons.REASONS.items():  # the library's reject reasons the API refuses uploads for
        if reason.status:
            tags[reasons.api_tag(name)] = reason.status
    tags.update(not_found=404, method_not_allowed=405, invalid_request=422, internal=500)
    return tags


def test_error_tags_are_documented_with_their_status():
    documented: dict[str, int] = {}
    for line in section("Errors").splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) != 2 or not re.match(r"^\d{3}", cells[0]):
            continue
        statuses = [int(s) for s in re.findall(r"\d{3}", cells[0])]
        for tag in re.findall(r"`([a-z_]+)`", cells[1]):
            documented[tag] = statuses[0] if len(statuses) == 1 else {"not_found": 404,
                                                                      "method_not_allowed": 405}.get(tag, statuses[0])
    assert documented == raised_tags()


def test_settings_table_is_every_variable():
    documented = {n for n in first_column(section("Settings (environment)")) if n.startswith("VIDEOMAE_")}
    variables = {f"VIDEOMAE_{name.upper()}" for name in Settings.model_fields}
    assert documented == variables, (sorted(documented - variables), sorted(variables - documented))
