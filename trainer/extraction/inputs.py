"""What feature extraction reads: the inputs listed (a directory, glob or manifest of videos, or ingest's clip shards),
with ingest's ids, and the videos a features directory already holds (a rerun skips them)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

import pyarrow.compute as pc
import pyarrow.parquet as pq

from trainer.extraction.config import InputSection
from videomae import features, listing, shards, storage


@dataclass
class Video:
    """One input video (or, for shard input, one shard video) and what the output says about it."""

    video_id: str
    uri: str
    key: str  # the npy name (path relative to the listing root, or the manifest's uri)
    label: str | None = None
    shard_files: list[str] = field(default_factory=list)  # shard input: the clip parts holding its clips




def is_shards(inp: InputSection) -> bool:
    if inp.kind != "auto":
        return inp.kind == "shards"
    opts = inp.storage_options
    return (not storage.is_glob(inp.path) and not listing.is_manifest(inp.path)
            and storage.exists(storage.join(inp.path, "videos.parquet"), opts)
            and storage.exists(storage.join(inp.path, "clips"), opts))


def list_videos(inp: InputSection) -> list[Video]:
    """Every input, in listing order, ids as ingest gives them. A repeated input is listed once."""
    opts, source = inp.storage_options, inp.source_name
    out: dict[str, Video] = {}
    if is_shards(inp):
        return _list_shard_videos(inp)
    if listing.is_manifest(inp.path):
        base = listing.manifest_base(inp.path, opts)
        for row in listing.read_manifest(inp.path, opts):
            if inp.split and str(row.get("split") or "") not in ("", inp.split):
                continue
            key = str(row["uri"])
            label = row.get("label")
            label = None if label is None or str(label).strip() == "" else str(label)
            vid = listing.make_video_id(source, key)
            out.setdefault(vid, Video(vid, storage.resolve(base, key), key, label))
    else:
        for uri, key in listing.list_files(inp.path, inp.extensions, opts):
            vid = listing.make_video_id(source, key)
            out.setdefault(vid, Video(vid, uri, key))
    return list(out.values())


def _list_shard_videos(inp: InputSection) -> list[Video]:
    opts = inp.storage_options
    with storage.open_file(storage.join(inp.path, "videos.parquet"), "rb", opts) as fh:
        vids = pq.read_table(fh, columns=["video_id", "uri", "label"]).to_pylist()
    try:
        names = shards.read_labels(inp.path, opts).get("names", [])
    except (FileNotFoundError, OSError):
        names = []
    by_id = {v["video_id"]: v for v in vids}
    files: dict[str, list[str]] = {}
    for f in shards.clip_files(inp.path, opts):
        with storage.open_file(f, "rb", opts) as fh:
            t = pq.read_table(fh, columns=["video_id", "split"])
        if inp.split:
            t = t.filter(pc.equal(t["split"], inp.split))
        for vid in dict.fromkeys(t["video_id"].to_pylist()):
            files.setdefault(vid, []).append(f)
    out = []
    for vid, fs in files.items():
        v = by_id.get(vid, {})
        label = v.get("label")
        name = names[label] if label is not None and 0 <= label < len(names) else None
        uri = v.get("uri") or vid
        out.append(Video(vid, uri, posixpath.basename(uri) or vid, name, fs))
    return out



def written_video_ids(path: str, options: storage.Options = None) -> set[str]:
    """The videos a features directory already holds (their parts are on disk: a rerun skips them)."""
    return set(features.read_features(path, ["video_id"], options)["video_id"].to_pylist())
