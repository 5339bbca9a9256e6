"""Seams that keep one home for each cross-cutting thing, read from the source with ast:
only videomae/storage.py imports fsspec, and videomae/ has no import cycle (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODE = ("videomae", "ingest", "trainer", "api", "scripts", "infra", "bench")


def imports(path: Path, modules: set[str] = frozenset()) -> set[str]:
    """Every module a file imports, at any depth. `from a import b`: a.b when that is one of `modules` (a submodule),
    else a."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
            found |= subs if len(subs) == len(node.names) else {node.module} | subs
    return found


def test_only_the_storage_module_imports_fsspec():
    users = sorted(str(p.relative_to(REPO)) for folder in CODE for p in (REPO / folder).rglob("*.py")
                   if any(m == "fsspec" or m.startswith("fsspec.") for m in imports(p)))
    assert users == ["videomae/storage.py"]


def test_no_import_cycle_in_the_library():
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (REPO / "videomae").rglob("*.py")}
    # A module's own packages (`videomae`, `videomae.video`) are initialised before it whatever it imports: not edges.
    graph = {m: {i for i in imports(p, set(modules)) if i in modules and i != m and not m.startswith(i + ".")}
             for m, p in modules.items()}
    cycles, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(path[path.index(n):] + [n] if n in path else [m, n])
            elif n not in state:
                visit(n, [*path, n])
        state[m] = "done"

    for m in sorted(modules):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles
