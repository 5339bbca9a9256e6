"""Dedupe as distributed stages over files: the rule of `ingest.dedupe`, with no step holding every signature or every
LSH key in one process. What any one task holds is bounded by `dedupe.block_videos` and `dedupe.partition_videos`,
not by the corpus; the driver holds the stage list, the block boundaries and counts.

Input: the fingerprinted ok videos in priority order (`ingest.dedupe.priority_key`), as *blocks* of at most
`block_videos` rows under the work directory: `id` (the video's rank in priority order, so ids order videos as the
survivor rule does), the padded signature and its length, the sha256 and whether the video is in an eval split.
Ids of block b are [starts[b], starts[b+1]). Then, each stage a list of tasks (`MapTasks`: in this process, or as
Ray tasks by `ingest.pipeline`), each task writing its files and last a done marker, so a rerun skips every finished
task and an interrupted stage resumes where it stopped:

    exact-scatter (per block)      sha256 -> hash partition                  exact/<block>/<partition>
    exact (per partition)          group by sha256: the first id is the representative, the others are exact
                                   copies (rows of the representative's block)      drop/<partition>/<block>
    keys (per block)               LSH keys of the block's representatives -> key partition    keys/<block>/<p>
    buckets (per partition)        sort by key, pairs of each bucket (buckets over max_bucket skipped and
                                   counted) -> pairs by the block of their lower id          pairs/<p>/<block>
    attach (per block a)           unique pairs (i, j) with i in a, with i's signature -> by j's block
                                                                                              attach/<a>/<block>
    verify (per block c)           the full signature distance against j's signature; verified edges  edges/<c>
    survivors (one task)           the greedy rule and the leak rule over the verified edges: only videos that
                                   have an edge (connected components of the edge graph; a video without an edge
                                   keeps itself); writes each changed video's keeper                   keepers
    resolve (per partition)        exact copies against their representative's keeper            dups/<partition>

Sizes: a keys task holds block_videos x ~108 keys (16 B each: ~86 MB at 50,000 videos); a buckets task the keys of
one partition, partition_videos x ~108 (~170 MB at 100,000 videos) and their sort; attach and verify one block's
signatures (3 KB each: ~150 MB) and its candidate pairs. Only `survivors` sees the whole graph, and only its verified
edges (the near copies: 32 B each; 10^6 edges are 32 MB).

`find_duplicates` in ingest/dedupe.py is the same rule in one process; tests/ingest/test_dedupe_stages.py checks the
two give identical duplicates (pairs, kinds, distances) and stats.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ingest import signature
from ingest.config import Dedupe
from ingest.dedupe import EVAL_SPLITS, alignment, candidate_pairs, lsh_keys, priority_key
from ingest.step import Context, Records, local_map
from videomae import storage

log = logging.getLogger(__name__)

# A stage's tasks in some executor: map_tasks(stage name, fn, items) -> [fn(item) for item in items], in any order.
MapTasks = Callable[[str, Callable[[Any], Any], list], list]

STAGES = ("exact-scatter", "exact", "keys", "buckets", "attach", "verify", "survivors", "resolve")


# ---------------------------------------------------------------------------------------------- files
def _save(uri: str, **arrays: np.ndarray) -> int:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    storage.write_bytes(uri, data)
    return len(data)


def _load(uri: str) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(storage.read_bytes(uri))) as z:
        return {k: z[k] for k in z.files}


def _concat(parts: list[dict[str, np.ndarray]], names: dict[str, tuple]) -> dict[str, np.ndarray]:
    """Concatenate the arrays of several loaded files; `names` gives each array's empty shape tail and dtype."""
    out = {}
    for name, (tail, dtype) in names.items():
        arrays = [p[name] for p in parts if len(p[name])]
        out[name] = np.concatenate(arrays) if arrays else np.zeros((0, *tail), dtype)
    return out


def _hash_sha(sha: np.ndarray) -> np.ndarray:
    """(n,) fixed-width sha256 strings -> (n,) uint64 for partitioning: their first 8 bytes, mixed (any text works)."""
    raw = np.zeros((len(sha), 8), np.uint8)
    b = np.frombuffer(np.ascontiguousarray(sha, dtype="S64").tobytes(), np.uint8).reshape(len(sha), 64)
    raw[:] = b[:, :8]
    with np.errstate(over="ignore"):
        return (raw.view(np.uint64)[:, 0] * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(17)


@dataclass(frozen=True)
class Work:
    """Where one dedupe's files live, and the layout of its blocks and partitions (small: B + 1 numbers)."""

    root: str
    starts: tuple[int, ...]  # block b holds ids starts[b] .. starts[b + 1] - 1
    partitions: int
    cfg: Dedupe
    storage_options: dict | None = None

    @property
    def blocks(self) -> int:
        return len(self.starts) - 1

    @property
    def n(self) -> int:
        return self.starts[-1]

    def uri(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def block_of(self, ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.starts), ids, side="right") - 1

    def block_uri(self, b: int) -> str:
        return self.uri("blocks", f"{b:05d}.npz")

    def done_uri(self, stage: str, task: int) -> str:
        return self.uri("done", stage, f"{task:05d}")

    def is_done(self, stage: str, task: int) -> bool:
        return storage.exists(self.done_uri(stage, task), self.storage_options)

    def mark_done(self, stage: str, task: int, stats: dict) -> None:
        storage.write_text(self.done_uri(stage, task), json.dumps(stats), self.storage_options)


def layout(n: int, cfg: Dedupe) -> tuple[tuple[int, ...], int]:
    """Block boundaries and the partition count for n videos."""
    bs = max(1, cfg.block_videos)
    starts = (*range(0, n, bs), n) if n else (0,)
    return starts, max(1, -(-n // max(1, cfg.partition_videos)))


def write_block(work: Work, b: int, sigs: np.ndarray, lens: np.ndarray, sha: np.ndarray, is_eval: np.ndarray) -> int:
    """Block b's input (ids starts[b] ..): padded signatures (n, K, L, D) uint8, lengths, sha256 hex, eval flags."""
    lo, hi = work.starts[b], work.starts[b + 1]
    assert len(sigs) == hi - lo, (len(sigs), lo, hi)
    return _save(work.block_uri(b), ids=np.arange(lo, hi, dtype=np.int64), sigs=sigs, lens=lens.astype(np.int64),
                 sha=np.asarray(sha, dtype="S64"), eval=np.asarray(is_eval, bool))


# ---------------------------------------------------------------------------------------------- the stage tasks
def _exact_scatter(work: Work, b: int) -> dict:
    blk = _load(work.block_uri(b))
    part = (_hash_sha(blk["sha"]) % np.uint64(work.partitions)).astype(np.int64)
    written = 0
    for p in range(work.partitions):
        m = part == p
        written += _save(work.uri("exact", f"{b:05d}", f"{p:05d}.npz"), ids=blk["ids"][m], sha=blk["sha"][m],
                         eval=blk["eval"][m])
    return {"bytes": written}


def _exact(work: Work, p: int) -> dict:
    parts = [_load(work.uri("exact", f"{b:05d}", f"{p:05d}.npz")) for b in range(work.blocks)]
    rows = _concat(parts, {"ids": ((), np.int64), "sha": ((), "S64"), "eval": ((), bool)})
    order = np.lexsort((rows["ids"], rows["sha"]))  # by sha, then id: the first of a group is its representative
    ids, sha, ev = rows["ids"][order], rows["sha"][order], rows["eval"][order]
    first = np.r_[True, sha[1:] != sha[:-1]] if len(sha) else np.zeros(0, bool)
    head = np.maximum.accumulate(np.where(first, np.arange(len(ids)), 0)) if len(ids) else np.zeros(0, np.int64)
    rep, rep_eval = ids[head], ev[head]  # each row's group's first: its representative
    copy = ~first
    blocks = work.block_of(ids[copy])
    written = 0
    for b in range(work.blocks):
        m = blocks == b
        written += _save(work.uri("drop", f"{p:05d}", f"{b:05d}.npz"), ids=ids[copy][m], rep=rep[copy][m],
                         eval=ev[copy][m], rep_eval=rep_eval[copy][m])
    return {"exact": int(copy.sum()), "bytes": written}


DROP_SCHEMA = {"ids": ((), np.int64), "rep": ((), np.int64), "eval": ((), bool), "rep_eval": ((), bool)}


def _dropped(work: Work, b: int) -> dict[str, np.ndarray]:
    """Block b's exact copies, from every partition's exact task."""
    return _concat([_load(work.uri("drop", f"{p:05d}", f"{b:05d}.npz")) for p in range(work.partitions)], DROP_SCHEMA)


def _keys(work: Work, b: int) -> dict:
    blk = _load(work.block_uri(b))
    reps = ~np.isin(blk["ids"], _dropped(work, b)["ids"])
    sigs, lens, ids = blk["sigs"][reps], blk["lens"][reps], blk["ids"][reps]
    keys, owners = lsh_keys(sigs, lens, work.cfg, chunk=4096)  # ~60 MB of temporaries per chunk
    owners = ids[owners]  # local row -> global id (lsh_keys emits owners in ascending order; so do the ids)
    part = (keys % np.uint64(work.partitions)).astype(np.int64)
    written = 0
    for p in range(work.partitions):
        m = part == p
        written += _save(work.uri("keys", f"{b:05d}", f"{p:05d}.npz"), keys=keys[m], owners=owners[m])
    return {"lsh_keys": int(len(keys)), "bytes": written}


def _buckets(work: Work, p: int) -> dict:
    parts = [_load(work.uri("keys", f"{b:05d}", f"{p:05d}.npz")) for b in range(work.blocks)]
    kv = _concat(parts, {"keys": ((), np.uint64), "owners": ((), np.int64)})
    # Blocks come in id order and each block's owners ascend, so owners ascend here too: candidate_pairs' stable
    # sort by key then keeps each bucket's members in id order, as in one process.
    pairs, skipped = candidate_pairs(kv["keys"], kv["owners"], work.cfg.max_bucket)
    blocks = work.block_of(pairs[:, 0])
    written = 0
    for b in range(work.blocks):
        written += _save(work.uri("pairs", f"{p:05d}", f"{b:05d}.npz"), pairs=pairs[blocks == b])
    return {"pairs_in_partition": int(len(pairs)), "skipped_buckets": skipped, "bytes": written}


def _attach(work: Work, a: int) -> dict:
    parts = [_load(work.uri("pairs", f"{p:05d}", f"{a:05d}.npz")) for p in range(work.partitions)]
    pairs = _concat(parts, {"pairs": ((2,), np.int64)})["pairs"]
    pairs = np.unique(pairs, axis=0) if len(pairs) else pairs  # a pair can share keys in several partitions
    blk = _load(work.block_uri(a))
    row = pairs[:, 0] - work.starts[a]
    blocks = work.block_of(pairs[:, 1])
    written = 0
    for c in range(work.blocks):
        m = blocks == c
        written += _save(work.uri("attach", f"{a:05d}", f"{c:05d}.npz"), pairs=pairs[m], sigs=blk["sigs"][row[m]],
                         lens=blk["lens"][row[m]], eval=blk["eval"][row[m]])
    return {"candidates": int(len(pairs)), "bytes": written}


def _verify(work: Work, c: int, batch: int = 4096) -> dict:
    parts = [_load(work.uri("attach", f"{a:05d}", f"{c:05d}.npz")) for a in range(work.blocks)]
    k = work.cfg.max_samples  # the blocks' padded length
    got = _concat(parts, {"pairs": ((2,), np.int64), "sigs": ((k, signature.L, signature.D), np.uint8),
                          "lens": ((), np.int64), "eval": ((), bool)})
    blk = _load(work.block_uri(c))
    row = got["pairs"][:, 1] - work.starts[c]
    dist = np.empty(len(row))
    for lo in range(0, len(row), batch):
        r = row[lo : lo + batch]
        dist[lo : lo + batch] = signature.batch_distance(got["sigs"][lo : lo + batch], got["lens"][lo : lo + batch],
                                                         blk["sigs"][r], blk["lens"][r], **alignment(work.cfg))
    m = dist <= work.cfg.threshold
    _save(work.uri("edges", f"{c:05d}.npz"), pairs=got["pairs"][m], dist=dist[m], eval_i=got["eval"][m],
          eval_j=blk["eval"][row[m]])
    return {"near_edges": int(m.sum())}


def _survivors(work: Work, _: int) -> dict:
    """The greedy rule and the leak rule of `ingest.dedupe.find_duplicates` over the verified edges. Ids are ranks in
    priority order, so visiting the videos that have an edge in id order is visiting them as the one-process rule
    does; a video without an edge keeps itself there and here."""
    parts = [_load(work.uri("edges", f"{c:05d}.npz")) for c in range(work.blocks)]
    e = _concat(parts, {"pairs": ((2,), np.int64), "dist": ((), np.float64), "eval_i": ((), bool),
                        "eval_j": ((), bool)})
    edges: dict[int, dict[int, float]] = {}
    is_eval: dict[int, bool] = {}
    for (i, j), d, ei, ej in zip(e["pairs"].tolist(), e["dist"].tolist(), e["eval_i"].tolist(), e["eval_j"].tolist(),
                                 strict=True):
        edges.setdefault(i, {})[j] = d
        edges.setdefault(j, {})[i] = d
        is_eval[i], is_eval[j] = ei, ej
    keeper: dict[int, tuple[int, float]] = {}
    for i in sorted(edges):
        if i in keeper:
            continue
        keeper[i] = (i, 0.0)
        for j, d in sorted(edges[i].items()):
            if j not in keeper:
                keeper[j] = (i, d)
    for i in sorted(edges):
        if keeper[i][0] != i or is_eval[i]:
            continue
        evals = [(d, j) for j, d in edges[i].items() if is_eval[j]]
        if evals:
            d, j = min(evals)
            keeper[i] = (keeper[j][0], d)
    changed = sorted(i for i, (k, _) in keeper.items() if k != i)
    ids = np.array(changed, np.int64)
    kept = np.array([keeper[i][0] for i in changed], np.int64)
    _save(work.uri("keepers.npz"), ids=ids, kept=kept, dist=np.array([keeper[i][1] for i in changed], np.float64),
          eval=np.array([is_eval[i] for i in changed], bool), kept_eval=np.array([is_eval[k] for k in kept], bool))
    return {"near_edges_total": int(len(e["dist"])), "near": len(changed)}


def _resolve(work: Work, p: int) -> dict:
    """Exact copies in partition p against their representative's keeper (the representative itself, unless dedupe
    dropped it as a near copy: then its keeper, kind near, at that distance)."""
    kp = _load(work.uri("keepers.npz"))
    drops = _concat([_load(work.uri("drop", f"{p:05d}", f"{b:05d}.npz")) for b in range(work.blocks)], DROP_SCHEMA)
    if len(kp["ids"]):
        at = np.minimum(np.searchsorted(kp["ids"], drops["rep"]), len(kp["ids"]) - 1)
        moved = kp["ids"][at] == drops["rep"]  # the representative was itself dropped as a near copy
        kept = np.where(moved, kp["kept"][at], drops["rep"])
        dist = np.where(moved, kp["dist"][at], 0.0)
        kept_eval = np.where(moved, kp["kept_eval"][at], drops["rep_eval"])
    else:
        moved, kept = np.zeros(len(drops["ids"]), bool), drops["rep"]
        dist, kept_eval = np.zeros(len(drops["ids"])), drops["rep_eval"]
    _save(work.uri("dups", f"{p:05d}.npz"), ids=drops["ids"], kept=kept, dist=dist, near=moved, eval=drops["eval"],
          kept_eval=kept_eval)
    return {"exact_rows": int(len(drops["ids"]))}


_TASKS: dict[str, tuple[Callable[[Work, int], dict], str]] = {
    "exact-scatter": (_exact_scatter, "blocks"),
    "exact": (_exact, "partitions"),
    "keys": (_keys, "blocks"),
    "buckets": (_buckets, "partitions"),
    "attach": (_attach, "blocks"),
    "verify": (_verify, "blocks"),
    "survivors": (_survivors, "one"),
    "resolve": (_resolve, "partitions"),
}


@dataclass(frozen=True)
class _Task:
    """One task of a stage, as it travels to an executor (the Work is a few numbers and a path)."""

    work: Work
    stage: str
    index: int

    def __call__(self) -> dict:
        if self.work.is_done(self.stage, self.index):
            return {"reused": 1}
        t0 = time.perf_counter()
        stats = _TASKS[self.stage][0](self.work, self.index)
        stats["task_s"] = round(time.perf_counter() - t0, 3)
        self.work.mark_done(self.stage, self.index, stats)
        return stats


def _run_task(task: _Task) -> dict:
    return task()


@dataclass
class StagedResult:
    """Duplicates by id: every dropped video, its keeper, the kind and distance; counts as `find_duplicates` gives."""

    ids: np.ndarray
    kept: np.ndarray
    kind: np.ndarray  # "exact" | "near"
    distance: np.ndarray
    stats: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)  # per stage: wall s, tasks, tasks reused, bytes written


def run_stages(work: Work, map_tasks: MapTasks = local_map, stop_after: str | None = None) -> StagedResult | None:
    """Run every stage over the blocks already written (`write_block`); tasks finished by an earlier run are skipped.
    `stop_after` ends after that stage (tests, the benchmark's kill points) and returns None."""
    counts = {"blocks": work.blocks, "partitions": work.partitions, "one": 1}
    report: dict[str, dict] = {}
    for stage in STAGES:
        t0 = time.perf_counter()
        tasks = [_Task(work, stage, i) for i in range(counts[_TASKS[stage][1]])]
        out = map_tasks(f"dedupe {stage}", _run_task, tasks)
        wall = time.perf_counter() - t0
        reused = sum(int(o.get("reused", 0)) for o in out)
        report[stage] = {"wall_s": round(wall, 3), "tasks": len(tasks), "reused": reused,
                         "bytes": sum(int(o.get("bytes", 0)) for o in out)}
        log.info("dedupe %s: %d tasks (%d done before) in %.1f s", stage, len(tasks), reused, wall)
        if stage == stop_after:
            return None
    return _collect(work, _totals_from_markers(work), report)


def _totals_from_markers(work: Work) -> dict:
    """The counts of every task, from its done marker (a task done by an earlier run counts too)."""
    totals: dict[str, int] = {}
    for stage, (_, over) in _TASKS.items():
        n = {"blocks": work.blocks, "partitions": work.partitions, "one": 1}[over]
        for i in range(n):
            stats = json.loads(storage.read_text(work.done_uri(stage, i), work.storage_options))
            for k in ("exact", "lsh_keys", "candidates", "skipped_buckets"):
                totals[k] = totals.get(k, 0) + int(stats.get(k, 0))
    return totals


def _collect(work: Work, totals: dict, report: dict) -> StagedResult:
    kp = _load(work.uri("keepers.npz"))
    dups = [_load(work.uri("dups", f"{p:05d}.npz")) for p in range(work.partitions)]
    d = _concat(dups, {"ids": ((), np.int64), "kept": ((), np.int64), "dist": ((), np.float64), "near": ((), bool),
                       "eval": ((), bool), "kept_eval": ((), bool)})
    ids = np.concatenate([kp["ids"], d["ids"]])
    kept = np.concatenate([kp["kept"], d["kept"]])
    dist = np.concatenate([kp["dist"], d["dist"]])
    kind = np.array(["near"] * len(kp["ids"]) + ["near" if m else "exact" for m in d["near"].tolist()], dtype=object)
    leaks = int((~kp["eval"] & kp["kept_eval"]).sum() + (~d["eval"] & d["kept_eval"]).sum())
    near_edges = int(sum(len(_load(work.uri("edges", f"{c:05d}.npz"))["dist"]) for c in range(work.blocks)))
    exact = int((kind == "exact").sum())
    stats = {"lsh_keys": totals.get("lsh_keys", 0), "candidates": totals.get("candidates", 0),
             "skipped_buckets": totals.get("skipped_buckets", 0), "near_edges": near_edges,
             "exact": exact, "near": int(len(ids)) - exact, "leaks": leaks}
    order = np.argsort(ids, kind="stable")
    return StagedResult(ids[order], kept[order], kind[order], dist[order], stats, report)


def inputs_digest(ids_and_shas: list[str], cfg: Dedupe) -> str:
    """What the work directory was made from: a rerun over other inputs or another rule starts afresh."""
    h = hashlib.sha256(cfg.model_dump_json().encode())
    for line in ids_and_shas:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- the step
def dedupe_step(records: Records, ctx: Context) -> Records:
    """Step dedupe: every ok record is kept or marked the duplicate of a kept one (`duplicate_of`, kind, distance).

    The driver sorts the ok records by priority (their ids) and writes their signatures as blocks, one block in
    memory at a time; the stages run as `ctx.map_tasks` tasks over the work directory `<output>/_work/dedupe/<digest>`
    (kept until the dedupe ends, so a killed run resumes at the task it stopped in), then the duplicates come back
    by id."""
    cfg = ctx.cfg.dedupe
    ok = sorted((r for r in records if r.ok), key=priority_key)
    if not cfg.enabled or not ok:
        ctx.facts["dedupe"] = {}
        return records
    options = ctx.cfg.storage_options
    digest = inputs_digest([f"{r.video_id} {r.sha256} {r.split}" for r in ok], cfg)
    starts, partitions = layout(len(ok), cfg)
    work = Work(storage.join(ctx.cfg.output, "_work", "dedupe", digest), starts, partitions, cfg, options)
    for b in range(work.blocks):
        if storage.exists(work.block_uri(b), options):
            continue
        blk = ok[starts[b] : starts[b + 1]]
        sigs, lens = signature.pad([signature.from_bytes(r.signature) for r in blk], cfg.max_samples)
        write_block(work, b, sigs, lens, np.array([r.sha256 for r in blk], dtype="S64"),
                    np.array([r.split in EVAL_SPLITS for r in blk], bool))
    result = run_stages(work, ctx.map_tasks)
    assert result is not None
    for i, k, kind, d in zip(result.ids.tolist(), result.kept.tolist(), result.kind.tolist(),
                             result.distance.tolist(), strict=True):
        rec = ok[i]
        rec.duplicate_of, rec.duplicate_kind, rec.duplicate_distance = ok[k].video_id, kind, float(d)
    s = ctx.facts["dedupe"] = result.stats
    storage.remove(storage.join(ctx.cfg.output, "_work"), options, recursive=True)
    log.info("dedupe: %d ok -> %d kept, %d exact, %d near (%d train/val leaks); %d candidate pairs", len(ok),
             len(ok) - len(result.ids), s["exact"], s["near"], s["leaks"], s["candidates"])
    return records
