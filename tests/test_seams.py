"""Seams that keep one home for each cross-cutting thing, read from the source with ast: only videomae/storage.py
imports fsspec, videomae/ has no import cycle (function-level imports included), and the library and the services
name a reject reason, a model kind or a recipe only through its declaration (none written as a bare string
elsewhere)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE = ("videomae", "ingest", "trainer", "api", "scripts", "infra", "bench")
# The library and the services: where a kind is declared and used. scripts/, bench/ and infra/ drive the services and
# may choose a kind by its name, as they choose a mask kind (docs/architecture.md "Where to change what").
SERVICES = ("videomae", "ingest", "trainer", "api")


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


def string_literals(path: Path) -> list[ast.Constant]:
    """Every string constant of a file but its docstrings (module, class, function)."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def bare_names(names: set[str], declared_in: str, allowed: dict[tuple[str, str], str] | None = None) -> list[str]:
    """`file:line: name` wherever a string literal of the services is one of `names`, outside the module that
    declares them (`declared_in`) and the `allowed` (file, name) pairs, each with why it is not a use of the name."""
    found = []
    for folder in SERVICES:
        for p in sorted((REPO / folder).rglob("*.py")):
            rel = p.relative_to(REPO).as_posix()
            found += [f"{rel}:{n.lineno}: {n.value}" for n in string_literals(p)
                      if n.value in names and rel != declared_in and (rel, n.value) not in (allowed or {})]
    return found


def first_arguments(call_names: set[str]) -> list[str]:
    """`file:line` of every call in the services to a function or method named in `call_names` whose first argument
    is a string literal."""
    found = []
    for folder in SERVICES:
        for p in sorted((REPO / folder).rglob("*.py")):
            for n in ast.walk(ast.parse(p.read_text())):
                if not isinstance(n, ast.Call) or not n.args:
                    continue
                name = n.func.id if isinstance(n.func, ast.Name) else getattr(n.func, "attr", None)
                if name in call_names and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str):
                    found.append(f"{p.relative_to(REPO).as_posix()}:{n.lineno}: {name}({n.args[0].value!r})")
    return found


def test_reject_reasons_are_named_only_where_they_are_declared():
    from videomae.reasons import REASONS

    assert bare_names(set(REASONS), "videomae/reasons.py") == []


def test_model_kinds_are_named_only_where_they_are_declared():
    from videomae.model import MODEL_KINDS

    allowed = {("trainer/config.py", "pretrain"): "the pre-training recipe's name, in the recipe table",
               ("trainer/config.py", "classifier"): "an evaluation mode (the model's own head), not a model kind",
               ("trainer/evaluate.py", "classifier"): "the evaluation mode"}
    assert bare_names(set(MODEL_KINDS), "videomae/model.py", allowed) == []


def test_recipes_are_named_only_where_they_are_declared():
    from trainer.config import RECIPES

    allowed = {("videomae/model.py", "pretrain"): "the pre-training model kind's name, in the kind table"}
    assert bare_names(set(RECIPES), "trainer/config.py", allowed) == []


def test_reasons_are_raised_through_their_declaration():
    """A reason given as a string, declared or not, would fail only in the job that raises it."""
    assert first_arguments({"VideoError", "Reject", "reject", "refusal"}) == []


def test_an_undeclared_reason_is_refused():
    from ingest.records import VideoRecord
    from videomae import reasons

    rec = VideoRecord("a.mp4", "src", 0, "unlabeled", "train", "a.mp4")
    with pytest.raises(KeyError, match="declared: missing, empty"):
        rec.reject("gone_fishing", "")
    assert rec.reject(reasons.TOO_SHORT, "3 frames decode").reason == reasons.TOO_SHORT


def test_videos_are_read_only_through_the_real_world_reader():
    """Outside videomae/video/, a video is read through `FrameReader` / `verify_length` (the claim until a read
    proves it wrong, then the frames that decode), never by decoding indices taken from the container's claim:
    nothing else names the low-level decoders or their module."""
    low_level = {"decode_frames", "decode_frames_at_times", "decoding"}
    found = []
    for folder in CODE:
        for p in sorted((REPO / folder).rglob("*.py")):
            rel = p.relative_to(REPO).as_posix()
            if rel.startswith("videomae/video/"):
                continue
            for n in ast.walk(ast.parse(p.read_text())):
                if isinstance(n, ast.ImportFrom):
                    names = {a.name for a in n.names} | {(n.module or "").rsplit(".", 1)[-1]}
                elif isinstance(n, ast.Import):
                    names = {a.name.rsplit(".", 1)[-1] for a in n.names}
                else:
                    names = {getattr(n, "attr", None), getattr(n, "id", None)}
                found += [f"{rel}:{n.lineno}: {h}" for h in sorted(names & low_level)]
    assert found == []


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
