"""`videomae` loads its names on first use: ingest's processes (every decode and dedupe task) never import torch,
and every public name still resolves."""

from __future__ import annotations

import subprocess
import sys


def test_ingest_imports_no_torch_and_every_name_resolves():
    code = ("import sys; import ingest.pipeline, ingest.steps, ingest.dedupe_stages; "
            "assert 'torch' not in sys.modules, 'ingest imported torch'; "
            "import videomae; assert set(videomae.__all__) == set(videomae._HOMES); "
            "[getattr(videomae, n) for n in videomae.__all__]; "
            "assert videomae.checkpoint.load_model is videomae.load_model; print('ok')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
