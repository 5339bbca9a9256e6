"""Run the documentation's shell and Python blocks as written, in order, in a fresh copy of the repository.

Blocks come from pytest-codeblocks' Markdown parser (`pytest_codeblocks.extract_from_file`), with the marks it
reads from an HTML comment right before a block (`<!--pytest.mark.NAME-->`). What a mark means here:

- no mark: run, in order, in one bash process per page (variables exported by one block reach the next);
- `server`: a command that serves until stopped (`python -m api`): started in the background, waited on through
  its `/readyz`, stopped when the page is done;
- `skip(reason=...)`: not run by the docs test; the reason names the test that covers it (`make test` is this
  suite; `make demo` is covered by its `--quick` twin in tests/infra/test_quickstart.py);
- `cluster`, `docker`: need a Ray cluster or a Docker engine; the tests that start those run them
  (`blocks(page, "cluster")`);
- `demo`: the README's commands after `make demo`, on what the demo made: tests/infra/test_quickstart.py runs them,
  as written, after the demo's --quick twin has written to `runs/demo`.

Python blocks run as files with the workspace's `.venv/bin/python`. Blocks of other languages (text, trees, JSON)
are not code and are left alone. The only change the runner makes to a command is an `Override`: a documented
`--set` that a user could type too, added to shorten a long step (fewer training steps), never an edit of the docs.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pytest_codeblocks import extract_from_file

REPO = Path(__file__).resolve().parents[2]
SHELLS = ("bash", "sh", "shell", "console")
NOT_HERE = ("skip", "cluster", "docker", "demo")  # marks whose blocks other tests run (or nobody, with a reason)


@dataclass(frozen=True)
class Block:
    page: str
    lineno: int
    language: str
    code: str
    marks: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.page}:{self.lineno}"

    def has(self, mark: str) -> bool:
        return any(m == f"pytest.mark.{mark}" or m.startswith(f"pytest.mark.{mark}(") for m in self.marks)


@dataclass(frozen=True)
class Override:
    """Extra arguments after the text a command line matches (a regex), e.g. `--set optim.max_steps=6` after
    `trainer/pretrain.py --config <file>`."""

    pattern: str
    extra: str

    def apply(self, line: str) -> str:
        return re.sub(self.pattern, lambda m: f"{m.group(0)} {self.extra}", line)


# Commands that change the environment the tests run in (the workspace's .venv is the suite's own environment):
# a block with one of these must carry a mark that keeps it from this runner.
ENVIRONMENT_CHANGING = ("make setup", "scripts/setup.sh", "pip install", "make test", "pytest")


def blocks(page: str, mark: str | None = None) -> list[Block]:
    """The code blocks of `page` (relative to the repository) in document order: the runnable ones without a mark
    that keeps them from this runner, or those carrying `mark`."""
    out = []
    for b in extract_from_file(REPO / page):
        language = (b.syntax or "").strip().lower()
        if language not in (*SHELLS, "python"):
            continue
        block = Block(page, b.lineno, language, b.code, tuple(b.marks))
        if mark is None and not any(block.has(m) for m in NOT_HERE):
            bad = [c for c in ENVIRONMENT_CHANGING if c in block.code]
            if bad:
                raise ValueError(f"{block.where}: runs {bad[0]!r}, which changes the test environment; mark the block "
                                 "<!--pytest.mark.skip(reason=...)--> and say which test covers it")
            out.append(block)
        elif mark is not None and block.has(mark):
            out.append(block)
    return out


def all_blocks(page: str) -> list[Block]:
    """Every shell and Python block of `page`, whatever its marks."""
    out = []
    for b in extract_from_file(REPO / page):
        language = (b.syntax or "").strip().lower()
        if language in (*SHELLS, "python"):
            out.append(Block(page, b.lineno, language, b.code, tuple(b.marks)))
    return out


def script(page_blocks: list[Block], overrides: list[Override], workdir: Path) -> str:
    """One bash script running the blocks in order; `### doc block <page>:<line>` marks where each starts."""
    lines = ["set -euo pipefail", "__servers=()",
             'trap \'for p in "${__servers[@]}"; do kill "$p" 2>/dev/null || true; done; wait\' EXIT']
    for i, block in enumerate(page_blocks):
        lines.append(f"echo {shlex.quote(f'### doc block {block.where}')} >&2")
        if block.language == "python":
            source = workdir / f".doc_block_{Path(block.page).stem}_{block.lineno}.py"
            source.write_text(block.code)
            lines.append(f".venv/bin/python {shlex.quote(str(source))}")
            continue
        code = "\n".join(_override(line, overrides) for line in block.code.splitlines())
        if block.has("server"):
            log = f".doc_server_{i}.log"
            lines += [f"( {code}\n) > {log} 2>&1 &", "__servers+=($!)", _wait_ready(log)]
        else:
            lines.append(code)
    return "\n".join(lines) + "\n"


def _override(line: str, overrides: list[Override]) -> str:
    for o in overrides:
        line = o.apply(line)
    return line


def _wait_ready(log: str, port: int = 8000, timeout_s: int = 180) -> str:
    """Bash: poll the server's /readyz (bounded); on timeout or exit, print its log and fail."""
    return (f"for __i in $(seq {timeout_s}); do "
            f"if curl -sf localhost:{port}/readyz >/dev/null; then break; fi; "
            f"if ! kill -0 \"${{__servers[-1]}}\" 2>/dev/null; then "
            f"cat {log} >&2; echo 'server exited' >&2; exit 1; fi; "
            f"if [ \"$__i\" = {timeout_s} ]; then cat {log} >&2; echo 'server not ready' >&2; exit 1; fi; "
            "sleep 1; done")


def workspace(dest: Path) -> Path:
    """A fresh copy of the repository as git sees it (tracked files and untracked ones it does not ignore), with
    `.venv` pointing at the environment running the tests (what `make setup` would have made)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if not src.is_file():
            continue  # deleted in the working tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(src.read_bytes())
        target.chmod(src.stat().st_mode)
    (dest / ".venv").symlink_to(Path(sys.prefix))
    return dest


def run_page(page_blocks: list[Block], overrides: list[Override], workdir: Path,
             timeout_s: float = 1200) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIDEOMAE_", "RAY_"))}
    env.update(PYTHONPATH=str(workdir), PYTHONUNBUFFERED="1")
    # Its own process group: on a timeout everything the blocks started (Ray, servers) goes with it.
    proc = subprocess.Popen(["bash", "-c", script(page_blocks, overrides, workdir)], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\n### timed out after {timeout_s:.0f} s"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def failure(proc: subprocess.CompletedProcess) -> str:
    """Which block failed, and the end of what it printed."""
    starts = re.findall(r"### doc block (\S+)", proc.stderr)
    where = starts[-1] if starts else "?"
    return f"doc block {where} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
