"""Fixtures for the core-library tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread per test: these models are tiny, and on the shared 2-core machine two spinning OpenMP
    threads competing with other suites' processes made single tests 10-20x slower in wall time (measured). The
    previous setting is restored, so other folders' tests are unaffected."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
