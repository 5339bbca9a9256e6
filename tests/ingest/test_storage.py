"""Inputs and outputs by URI through fsspec (memory:// here; s3://, gs:// work the same way), without Ray."""

from __future__ import annotations

import fsspec

from ingest.config import IngestConfig
from ingest.steps import write
from ingest.steps.fingerprint import fingerprint_record
from ingest.steps.listing import list_inputs
from ingest.steps.probe import probe_record
from videomae import shards
from videomae.reasons import MISSING


def test_memory_uris_end_to_end_without_ray(sample_root):
    fs = fsspec.filesystem("memory")
    for name in ("testsrc2.mp4", "bars_hue.mp4"):
        fs.pipe(f"/in/vids/{name}", (sample_root / "unlabeled_lavfi" / name).read_bytes())
    fs.pipe("/in/list.jsonl", b'{"uri": "vids/testsrc2.mp4", "label": "a", "split": "val"}\n'
                              b'{"uri": "vids/nope.mp4", "label": "b"}\n')  # fmt: skip
    cfg = IngestConfig.model_validate(
        {
            "output": "memory://out/ds",
            "sources": [
                {"name": "dir", "kind": "unlabeled", "path": "memory://in/vids"},
                {"name": "man", "kind": "labeled", "path": "memory://in/list.jsonl"},
            ],
            "clips": {"num_frames": 4, "short_side": 32},
        }
    )
    recs = [fingerprint_record(probe_record(r, cfg), cfg) for r in list_inputs(cfg)]
    got = {(r.source, r.key): r for r in recs}
    assert set(got) == {("dir", "bars_hue.mp4"), ("dir", "testsrc2.mp4"), ("man", "vids/testsrc2.mp4"),
                        ("man", "vids/nope.mp4")}  # fmt: skip
    assert got[("man", "vids/nope.mp4")].reason == MISSING
    a, b = got[("dir", "testsrc2.mp4")], got[("man", "vids/testsrc2.mp4")]
    assert a.ok and b.ok and a.sha256 == b.sha256 and a.signature == b.signature
    assert b.uri.startswith("memory://") and b.uri.endswith("/in/vids/testsrc2.mp4") and b.split == "val"
    result = write.write_part(0, [a], cfg)
    assert result["clips"] == 1 and not result["skipped"]
    assert write.write_part(0, [a], cfg)["skipped"]  # resumable on any filesystem
    clips = shards.read_clips("memory://out/ds")
    assert clips.num_rows == 1 and clips["height"][0].as_py() == 32
