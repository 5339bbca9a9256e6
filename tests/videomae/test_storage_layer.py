"""The one storage layer: URIs (memory://, file://, local paths) with storage options, and `load_model` reading a
model directory, a training checkpoint and a reference .pth by URI."""

from __future__ import annotations

import subprocess
import sys

import fsspec
import pytest
import torch

from videomae import create_classifier, create_model, load_model, storage


def test_locations_and_atomic_writes(tmp_path):
    assert storage.resolve("data/sample", "a.csv") == "data/sample/a.csv"
    assert storage.resolve("s3://bucket/x", "a.csv") == "s3://bucket/x/a.csv"
    assert storage.resolve("data", "/abs/a.csv") == "/abs/a.csv" and storage.resolve("data", "gs://b/a") == "gs://b/a"
    assert storage.resolve("", "a.csv") == "a.csv"
    for base in (f"file://{tmp_path}", "memory://storage-test"):
        storage.write_text(f"{base}/d/x.txt", "hello")
        assert storage.read_text(f"{base}/d/x.txt") == "hello" and storage.exists(f"{base}/d/x.txt")
        assert storage.read_text_or_none(f"{base}/d/missing.txt") is None
        assert [u.rsplit("/", 1)[1] for u in storage.glob(f"{base}/d/*.txt")] == ["x.txt"]
        assert not any("tmp-" in u for u in storage.find(f"{base}/d"))  # the temporary name was renamed away
        with storage.local_file(f"{base}/d/x.txt") as local:
            assert open(local).read() == "hello"
    assert storage.glob("memory://storage-test/d/*.txt")[0].startswith("memory://")


def test_storage_options_reach_the_filesystem(tmp_path):
    """Options travel with the location (fsspec's storage_options), here the local filesystem's `auto_mkdir`."""
    uri = f"file://{tmp_path}/new/dir/x.bin"
    with pytest.raises(FileNotFoundError):
        storage.open_file(uri, "wb", {"auto_mkdir": False})
    with storage.open_file(uri, "wb", {"auto_mkdir": True}) as f:
        f.write(b"x")
    assert storage.read_bytes(uri) == b"x"
    fs, path = storage.filesystem("memory://opts/a")
    assert path == "/opts/a" and isinstance(fs, fsspec.AbstractFileSystem)


@pytest.mark.parametrize("scheme", ["memory", "file"])
def test_load_model_reads_uris(tmp_path, scheme):
    torch.manual_seed(0)
    model = create_model("nano").eval()
    clf = create_classifier("nano", num_classes=3).eval()
    base = f"memory://models-{tmp_path.name}" if scheme == "memory" else f"file://{tmp_path}"
    model.save(f"{base}/pre")  # our model directory, written through the storage layer
    clf.save(f"{base}/run/model")  # a run or checkpoint directory holding one under model/
    torch.save({"model": model.state_dict()}, tmp_path / "ref.pth")
    storage.write_bytes(f"{base}/ref.pth", (tmp_path / "ref.pth").read_bytes())
    x = torch.randn(1, 3, model.cfg.num_frames, model.cfg.img_size, model.cfg.img_size)
    with torch.no_grad():
        assert torch.equal(load_model(f"{base}/pre").eval().forward_features(x), model.forward_features(x))
        assert torch.equal(load_model(f"{base}/run").eval()(x), clf(x))
        ref = load_model(f"{base}/ref.pth", preset="nano").eval()
        assert torch.equal(ref.forward_features(x), model.forward_features(x))
    with pytest.raises(FileNotFoundError):
        load_model(f"{base}/nothing-here")


def test_remove_a_tree_after_the_working_directory_is_gone(tmp_path):
    """An ingest job's driver on the local two-node cluster was found without its working directory (its working_dir
    package gone from under it); removing a local tree must not need one (fsspec's local rm asks for it)."""
    tree = tmp_path / "out" / "_work"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f.npz").write_bytes(b"x")
    code = ("import os, sys; from videomae import storage; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
            "storage.remove(sys.argv[2], recursive=True); storage.remove(sys.argv[3]); print('ok')")
    gone = tmp_path / "cwd"
    gone.mkdir()
    (tmp_path / "file").write_text("x")
    run = subprocess.run([sys.executable, "-c", code, str(gone), str(tree), str(tmp_path / "file")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
    assert not tree.exists() and not (tmp_path / "file").exists() and (tmp_path / "out").is_dir()
