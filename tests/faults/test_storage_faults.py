"""Storage faults under the real jobs (storage_faults.py): a write that fails leaves nothing behind and names its
file; a read that fails stops the job instead of turning into a reject; ingest and extraction stopped by a faulty
filesystem or a full disk (a small tmpfs) commit nothing half-written, and rerun to the uninterrupted run's output."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
import storage_faults
from faulty_fs import FaultyFileSystem

from videomae import storage

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs (the full disk) needs root, as CI has")


@pytest.fixture(autouse=True)
def faulty():
    storage_faults.faulty_fs.install()
    FaultyFileSystem.configure()
    yield FaultyFileSystem
    FaultyFileSystem.configure()


def test_a_failed_write_names_its_file_and_leaves_no_temporary_file(tmp_path, faulty):
    target = tmp_path / "d" / "table.parquet"
    storage.write_bytes(str(target), b"old")
    faulty.configure(write_every=1)  # the write tears: half of the bytes reach the temporary file, then EIO
    with pytest.raises(OSError, match=f"cannot write faulty://{target}: injected write fault") as e:
        storage.write_bytes(f"faulty://{target}", b"new bytes " * 1000)
    assert e.value.errno == errno.EIO
    assert sorted(os.listdir(target.parent)) == ["table.parquet"] and target.read_bytes() == b"old"


@needs_root
def test_a_full_disk_is_left_as_full_as_before_the_write(tmp_path):
    disk = storage_faults.Tmpfs(tmp_path / "disk", "256k")
    try:
        before = disk.used_kb()
        with pytest.raises(OSError, match=f"cannot write {disk.path}/big.bin: No space left on device") as e:
            storage.write_bytes(str(disk.path / "big.bin"), os.urandom(1 << 20))
        assert e.value.errno == errno.ENOSPC
        assert os.listdir(disk.path) == [] and disk.used_kb() == before  # the torn temporary file is gone
    finally:
        disk.close()


@pytest.mark.slow
def test_a_read_fault_stops_ingest_instead_of_rejecting_the_video(sample_root, tmp_path):
    """Every 23rd read fails: the first to fail is a source video's. Before, probe turned a failing look-up into
    `missing` and fingerprint a failing read into `decode_error`: the job went on (to the next injected fault, or to
    a dataset short of those videos)."""
    row = storage_faults.scenario("ingest", "read", 23, sample_root, tmp_path)
    assert row["stopped"] and row["names_path"], row
    assert row["swallowed"] == 0, f"{row['swallowed']} read faults became rejects before one stopped the job"
    assert row["ok"], row


# One of the scenarios storage_faults.py runs (its full list, extraction's included: `python
# tests/faults/storage_faults.py`); CI's budget holds three ingest runs here.
@pytest.mark.slow
@pytest.mark.parametrize(("job", "fault", "n"), [
    pytest.param("ingest", "full", 300, marks=needs_root),  # the disk fills while parts are written
])
def test_job_stops_commits_nothing_half_written_and_reruns_identically(sample_root, tmp_path, job, fault, n):
    row = storage_faults.scenario(job, fault, n, sample_root, tmp_path)
    assert row["stopped"], f"the fault never stopped the job: {row}"
    assert row["names_path"], row["error"]
    assert row["left_behind"] == [], row["left_behind"]
    assert row["rerun_problems"] == [], row["rerun_problems"]


def test_the_script_runs(tmp_path):
    """storage_faults.py as bench/faults.py runs it (--help only: the scenarios are the tests above)."""
    out = subprocess.run([storage_faults.sys.executable, storage_faults.__file__, "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "--quick" in out.stdout
