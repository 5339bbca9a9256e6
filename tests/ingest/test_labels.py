"""Label normalisation, aliases and the merged space, without Ray."""

from __future__ import annotations

from ingest.config import IngestConfig
from ingest.labels import merge_labels, normalise
from ingest.records import VideoRecord


def _cfg(**aliases) -> IngestConfig:
    return IngestConfig.model_validate(
        {
            "output": "/tmp/x",
            "sources": [
                {"name": "a", "kind": "labeled", "path": "a.csv"},
                {"name": "b", "kind": "labeled", "path": "b.csv", "aliases": aliases},
                {"name": "u", "kind": "unlabeled", "path": "u/"},
            ],
        }
    )


def _rec(source, idx, label):
    kind = "unlabeled" if source == "u" else "labeled"
    return VideoRecord(uri=f"{source}/{label}", source=source, source_index=idx, kind=kind, split="train",
                       key=f"{label}", label_name=label)  # fmt: skip


def test_normalise():
    assert normalise("  Moving_Left ") == "moving left"
    assert normalise("rotate-CW") == normalise("rotate cw") == "rotate cw"
    assert normalise("passing American football (in game)") == "passing american football (in game)"


def test_identical_names_merge_and_maps_project_back():
    recs = [_rec("a", 0, "move left"), _rec("a", 0, "Grow"), _rec("a", 0, "shrink"),
            _rec("b", 1, "moving_left"), _rec("b", 1, "grow"), _rec("b", 1, "moving_up"),
            _rec("u", 2, None)]  # fmt: skip
    space = merge_labels(recs, _cfg(**{"Moving Left": "move left"}))
    assert space.names == ["grow", "move left", "moving up", "shrink"]
    assert space.sources["a"] == {"classes": ["Grow", "move left", "shrink"], "to_merged": [0, 1, 3]}
    assert space.sources["b"] == {"classes": ["grow", "moving_left", "moving_up"], "to_merged": [0, 1, 2]}
    assert "u" not in space.sources
    assert [r.label for r in recs] == [1, 0, 3, 1, 0, 2, None]
    # Projection: a merged head's logits restricted to b's classes, in b's local order.
    logits = [10, 11, 12, 13]
    assert [logits[i] for i in space.sources["b"]["to_merged"]] == [10, 11, 12]
    assert space.index("b", "moving_left") == space.index("a", "move left")
    assert space.to_json()["num_classes"] == 4


def test_without_alias_names_stay_apart():
    recs = [_rec("a", 0, "move left"), _rec("b", 1, "moving_left")]
    assert merge_labels(recs, _cfg()).names == ["move left", "moving left"]
