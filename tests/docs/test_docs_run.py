"""The README and the docs run as written: every shell and Python block, in order, in a fresh copy of the repository
(tests/docs/doc_runner.py). A doc whose command no longer works, or whose outputs are not where it says, fails
here, naming the page and line of the block.

The pages share one workspace, in this order, as a reader would follow them: the README's "Each service on its
own" makes the sample data, the shards and the models the other pages use. Long training runs are shortened with
`--set`s a user could type (`OVERRIDES`); nothing in the docs is edited. Blocks that need a Ray cluster or Docker
are run by the tests that start those (tests/infra), and `make demo` by its --quick twin (test_quickstart.py).
"""

from __future__ import annotations

import json
import re
import socket

import pytest
import yaml
from doc_runner import REPO, Override, all_blocks, blocks, failure, run_page, workspace

pytestmark = pytest.mark.slow

OVERRIDES = [
    Override(r"trainer/pretrain\.py --config \S+",
             "--set optim.max_steps=6 --set optim.warmup_steps=1 --set run.checkpoint_every=3 --set run.log_every=2"),
    Override(r"trainer/postpretrain\.py --config \S+",
             "--set optim.max_steps=6 --set optim.warmup_steps=1 --set run.checkpoint_every=6 --set run.log_every=2 "
             "--set eval.num_clips=1 --set eval.num_crops=1"),
    Override(r"trainer/distill\.py --config \S+",
             "--set optim.max_steps=4 --set optim.warmup_steps=1 --set run.checkpoint_every=4 --set run.log_every=2 "
             "--set eval.num_clips=1 --set eval.num_crops=1"),
    Override(r"trainer/evaluate\.py --config configs/evaluate/attentive_tiny\.yaml", "--set attentive.epochs=3"),
]
# in order, one workspace (docs/training.md distils and probes README's runs)
PAGES = ["README.md", "docs/training.md", "docs/ingest.md", "docs/extract.md", "docs/model.md", "docs/api.md"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    with socket.socket() as s:  # the docs serve on localhost:8000, as a user's shell would
        if s.connect_ex(("127.0.0.1", 8000)) == 0:
            pytest.fail("port 8000 is taken: the docs' server commands need it free")
    return workspace(tmp_path_factory.mktemp("docs"))


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("page", PAGES)
def test_page_runs_as_written(page, workdir):
    page_blocks = blocks(page)
    assert page_blocks, f"{page}: no runnable blocks"
    proc = run_page(page_blocks, OVERRIDES, workdir, timeout_s=1200)
    assert proc.returncode == 0, failure(proc)
    if page == "README.md":
        check_readme_outputs(workdir)
    # Logs fit for a file: no terminal escape codes or progress bars when stdout is not a terminal. (Ray colours two
    # kinds of its own lines whatever stdout is: the job CLI's, cli.py, and ray.init's "View the dashboard", worker.py.)
    log = "\n".join(line for line in (proc.stdout + proc.stderr).splitlines()
                     if " cli.py:" not in line and "View the dashboard" not in line)
    assert "\x1b[" not in log and "row/s]" not in log, [line for line in log.splitlines() if "\x1b[" in line][:5]


def check_readme_outputs(workdir):
    """What "Each service on its own" promises: run outputs under runs/<name>/, answers from the served model."""
    for name in ("pretrain-tiny", "postpretrain-tiny"):
        run = workdir / "runs" / name
        assert (run / "model" / "config.json").is_file(), name
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert rows and rows[-1]["step"] == 6, name
        assert (run / "tensorboard").is_dir(), name
    assert json.loads((workdir / "runs/eval-tiny/eval_knn.json").read_text())["mode"] == "knn"
    embed = json.loads((workdir / "embedding.json").read_text())
    assert embed["dim"] == len(embed["embedding"]) > 0
    assert (workdir / "reconstruction.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    nearest = json.loads((workdir / "nearest.json").read_text())["results"]
    assert len(nearest) == 3 and all(r["video_id"] and r["uri"] for r in nearest)


def doc_pages() -> list[str]:
    return ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]


def test_every_page_with_commands_is_run_or_marked():
    """A new page with shell or Python blocks must be in PAGES or mark its blocks (the runner skips nothing else)."""
    unrun = [p for p in doc_pages() if p not in PAGES and blocks(p)]
    assert not unrun, f"pages with runnable blocks that no test runs: {unrun} (add them to PAGES, or mark blocks)"


def commands(code: str) -> list[str]:
    """A shell block's command lines as a user with the environment active types them: no comments, no
    `source .venv/bin/activate`, `.venv/bin/` dropped, continuation lines joined, spaces collapsed."""
    joined = re.sub(r"\\\n\s*", " ", code)
    out = []
    for line in joined.splitlines():
        line = re.sub(r"\s+#.*$|^#.*$", "", line).strip()
        if line and line != "source .venv/bin/activate":
            line = line.replace(".venv/bin/", "")
            out.append(" ".join(line.split()))
    return out


def test_blocks_said_to_repeat_another_page_do():
    """A block marked skip(reason="same commands as PAGE") is only skipped because PAGE runs the same commands:
    each of its command lines must be one of PAGE's runnable ones, or the mark is a lie."""
    checked = 0
    for page in doc_pages():
        for block in all_blocks(page):
            m = next((re.search(r'same commands as ([\w/.]+\.md)', mk) for mk in block.marks if "skip(" in mk), None)
            if not m:
                continue
            ran = {c for b in blocks(m.group(1)) for c in commands(b.code)}
            missing = [c for c in commands(block.code) if c not in ran]
            assert not missing, f"{block.where}: not run by {m.group(1)}: {missing}"
            checked += 1
    assert checked >= 2


PATH_IN_DOCS = re.compile(r"(?<![\w/.$-])((?:configs|infra|trainer|ingest|scripts|bench|api|videomae|tests)/[\w./-]+"
                          r"\.(?:ya?ml|py|sh)|docker-compose[\w.-]*\.yml)\b")


def test_files_named_in_any_block_exist():
    """Every repository file a command block names (configs, scripts, manifests, compose files) exists, in the
    blocks this test runs and in those it cannot (cluster, Docker, Kubernetes) alike."""
    named = set()
    for page in doc_pages():
        for block in all_blocks(page):
            for path in PATH_IN_DOCS.findall(block.code):
                named.add(path)
                assert (REPO / path).exists(), f"{block.where}: names {path}, which does not exist"
    assert len(named) >= 10, named


def test_docker_blocks_match_the_compose_files_and_the_stack_test():
    """The Docker blocks (run for real by tests/infra/test_docker_stack.py through infra/docker/stack-test.sh) name
    compose files, services and variables that exist, export every secret compose requires, and the stack test uses
    the CPU override the docs give."""
    docker = [b for page in doc_pages() for b in blocks(page, "docker")]
    assert len(docker) >= 4
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = set(compose["services"])
    required = set(re.findall(r"\$\{(\w+):\?", (REPO / "docker-compose.yml").read_text()))
    assert {"RAY_AUTH_TOKEN", "VIDEOMAE_API_KEYS"} <= required
    stack = (REPO / "infra/docker/stack-test.sh").read_text()
    cpu_files, exported, page = set(), set(), None
    for block in docker:  # in page order: a block sees what the page's earlier Docker blocks exported
        if block.page != page:
            exported, page = set(), block.page
        exported |= {v for line in re.findall(r"export (.+)", block.code) for v in re.findall(r"(\w+)=", line)}
        for files in re.findall(r"COMPOSE_FILE=(\S+)", block.code):
            cpu_files.add(files)
            assert all((REPO / f).is_file() for f in files.split(":")), f"{block.where}: {files}"
        for svc in re.findall(r"docker compose (?:logs -f|run --rm|up -d --scale) (\S+?)(?:=|\s|$)", block.code):
            assert svc in services, f"{block.where}: no service {svc!r} in docker-compose.yml"
        if "docker compose up" in block.code:
            assert required <= exported, f"{block.where}: compose requires {sorted(required - exported)}"
    assert cpu_files == {"docker-compose.yml:docker-compose.cpu.yml"}
    assert "docker-compose.cpu.yml" in stack


def test_docs_stand_on_their_own():
    """No page, docstring or help text sends a reader to a design file the repository does not have."""
    tracked = [REPO / p for p in __import__("subprocess").run(["git", "ls-files"], cwd=REPO, capture_output=True,
                                                               text=True, check=True).stdout.split()]
    offenders = [str(p.relative_to(REPO)) for p in tracked if p.suffix in (".py", ".md", ".yaml", ".yml", ".sh")
                 and p.is_file() and p.name != "test_docs_run.py"
                 and re.search(r"\b(DESIGN|STYLE)\.md", p.read_text(errors="replace"))]
    assert not offenders, offenders


def test_quickstart_numbers_come_from_a_demo_summary():
    """docs/quickstart.md's figures are the render of a demo's summary.json committed beside it, never typed."""
    import importlib
    import sys

    if str(REPO / "scripts") not in sys.path:  # scripts/ are plain scripts; demo_report imports its sibling `stages`
        sys.path.insert(0, str(REPO / "scripts"))
    demo_report = importlib.import_module("demo_report")
    page = (REPO / "docs/quickstart.md").read_text()
    start, end = page.index(demo_report.NUMBERS_BEGIN), page.index(demo_report.NUMBERS_END)
    block = page[start:end + len(demo_report.NUMBERS_END)]
    committed = REPO / "docs/quickstart-summary.json"
    if not committed.exists():  # no run committed yet: no figures at all, rather than typed ones
        assert block == f"{demo_report.NUMBERS_BEGIN}\n{demo_report.NUMBERS_END}", block
        return
    summary = json.loads(committed.read_text())
    assert block == demo_report.numbers_block(summary)
    assert summary["config"] == "configs/demo/quickstart.yaml"  # make demo's, not the --quick twin's


def test_docs_curl_commands_show_error_bodies():
    """Every curl call to the API in the docs keeps the API's error answer (--fail-with-body), none hides it (-f)."""
    calls = [line for page in doc_pages() for block in all_blocks(page) for line in commands(block.code)
             if line.startswith("curl ") and ":8000" in line]
    assert len(calls) >= 8, calls
    for line in calls:
        assert "--fail-with-body" in line and not re.search(r"\s-\w*f\w*\s", line.replace("--fail-with-body", "")), line
