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
import socket

import pytest
from doc_runner import Override, blocks, failure, run_page, workspace

pytestmark = pytest.mark.slow

OVERRIDES = [
    Override(r"trainer/pretrain\.py --config \S+",
             "--set optim.max_steps=6 --set optim.warmup_steps=1 --set run.checkpoint_every=3 --set run.log_every=2"),
    Override(r"trainer/postpretrain\.py --config \S+",
             "--set optim.max_steps=6 --set optim.warmup_steps=1 --set run.checkpoint_every=6 --set run.log_every=2 "
             "--set eval.num_clips=1 --set eval.num_crops=1"),
]
PAGES = ["README.md", "docs/api.md"]


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


def test_every_page_with_commands_is_run_or_marked():
    """A new page with shell or Python blocks must be in PAGES or mark its blocks (the runner skips nothing else)."""
    from doc_runner import REPO

    pages = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
    unrun = [p for p in pages if p not in PAGES and blocks(p)]
    assert not unrun, f"pages with runnable blocks that no test runs: {unrun} (add them to PAGES, or mark blocks)"
