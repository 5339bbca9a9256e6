"""Typed YAML configs with `--set a.b=value` overrides (docs/architecture.md "Configs"), shared by every
service's loader.

A service defines its pydantic models (unknown keys forbidden) and calls `load_typed`; errors come back as one
`dotted.key: problem` line per problem, so a bad key is named before any work starts. Its command line starts from
`config_parser` (`--config FILE`, repeatable `--set KEY=VALUE`) and adds its own flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ValidationError

from videomae import storage

M = TypeVar("M", bound=BaseModel)

# A path or URI in a config: local paths are made absolute against the directory the command runs in, when the config
# is validated on the driver (`storage.absolute`), so workers and `ray job submit` entrypoints, which run elsewhere,
# see the same files. Validating again on a worker leaves an absolute path as it is.
Location = Annotated[str, AfterValidator(storage.absolute)]


class ConfigError(ValueError):
    """A config that does not validate; one `dotted.key: problem` line per error."""


def config_parser(description: str, config_help: str, example: str, prog: str | None = None) -> argparse.ArgumentParser:
    """A command line taking `--config FILE` (required) and `--set KEY=VALUE` overrides (repeatable, into
    `args.overrides`); `example` is one override for the help text."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help=config_help)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override any key, dotted, e.g. --set {example} (repeatable)")
    return parser


def apply_override(data: dict, assignment: str) -> None:
    """Apply one `a.b.0.c=value` to nested dicts/lists in place; the value is parsed as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    parts = key.strip().split(".")
    value = yaml.safe_load(raw) if raw.strip() else ""
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{'.'.join(parts[:i + 1])}: no list item {part} (have {len(node)})")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if node is None:
                    raise ConfigError(f"{'.'.join(parts[:i + 1])}: is empty, cannot set {parts[i + 1]}")
        else:
            raise ConfigError(f"{'.'.join(parts[:i])}: is a {type(node).__name__}, cannot set {part}")


def format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        if ":" in msg.split(" ")[0]:
            # Section validators name their own key ("weights: ..."); join it onto the section's path.
            lines.append(f"{key}.{msg}" if key != "<root>" else msg)
        else:
            lines.append(f"{key}: {msg}")
    return "\n".join(lines)


def read_yaml(path: str | Path) -> dict:
    loaded = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
    return loaded


def load_typed(model: type[M], path: str | Path | None, overrides: list[str] | None = None,
               base: dict | None = None, *, name_source: bool = False) -> M:
    """YAML file (optional) over `base` defaults, then dotted `--set` overrides, validated into `model`.

    `name_source` prefixes errors with the file and model name ("configs/x.yaml: invalid PretrainConfig")."""
    data: dict = dict(base or {})
    if path is not None:
        data.update(read_yaml(path))
    for assignment in overrides or []:
        apply_override(data, assignment)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        where = (f"{path}: " if path is not None else "") + f"invalid {model.__name__}\n" if name_source else ""
        raise ConfigError(f"{where}{format_errors(e)}") from None
