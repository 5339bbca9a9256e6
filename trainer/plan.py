"""The sample order of a run: a deterministic, endless sequence of clip rows over one shard dataset or a weighted mix.

The unit of storage is a *chunk*: one Parquet row group of `clips/part-*.parquet`, restricted to the rows of the
wanted split (and sources). An epoch is a seeded permutation of chunks; the unit of reading is a group of
`chunks_per_unit` consecutive chunks of it, whose rows are read in one seeded permutation across the whole group, so
shuffling costs no random access into Parquet (the reference shuffles video indices instead: it has one file per
video). Within a unit, every video's first clip (in the shuffled order) comes before any video's second clip. Both
matter: a chunk holds every clip of its few videos, and batches cut from one chunk carry clips of the same video side
by side; on the synthetic motion task that alone kept a classifier near chance (docs/training.md, "Sample order").

Mixing: each dataset i contributes `k_i` chunks per epoch, `k_i` proportional to its weight (default: its size), drawn
from its own endless stream of per-cycle chunk permutations; the epoch interleaves all chosen chunks in a seeded
order. With one dataset and no weights an epoch is exactly one pass over the data.

Every sample has a global sequence number `seq` (0, 1, 2, ...: its place in this order). `locate(seq)` finds the chunk
that holds it, so a resumed run starts reading at its checkpoint's position instead of from the beginning; nothing here
depends on Ray, timing or the number of readers.

Streams: a run reads the order through S streams (S = the number of workers by default). Each epoch's order is cut
into S contiguous parts of (nearly) equal length, and stream s reads part s of epoch 0, then part s of epoch 1, ...
(`stream_pieces`). The streams advance together, one share of the global batch per step each, so a step's samples are
the same whichever worker reads which stream, every epoch is finished by all streams at the same step, and a stream's
position after k steps is k times its share: a resume is exact. Only the unit at each part boundary is read by two
streams (each takes its own rows).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from videomae import storage
from videomae.shards import clip_files

log = logging.getLogger(__name__)

_EPOCH_ORDER = 7_919  # salts that keep the seeded streams independent of one another
_ROW_ORDER = 104_729


@dataclass(frozen=True)
class Chunk:
    dataset: int  # index into the mix
    file: str
    row_group: int
    rows: tuple[int, ...]  # row indices inside the row group that belong to the wanted split/sources
    videos: tuple[int, ...] = ()  # per row: which video of the row group it comes from (0, 1, ...)


@dataclass
class ShardIndex:
    """The chunks of every dataset in a mix, from Parquet metadata and the small `split`/`source` columns only."""

    paths: list[str]
    chunks: list[list[Chunk]] = field(default_factory=list)  # per dataset
    options: dict = field(default_factory=dict)  # storage options of the datasets' filesystem

    @classmethod
    def build(cls, paths: list[str], split: str | None, sources: list[str] | None = None,
              labeled: bool = False, options: storage.Options = None) -> ShardIndex:
        """Chunks of the rows in `split` (all splits: None), from `sources` (all: None), with a label if `labeled`."""
        index = cls(paths=list(paths), options=dict(options or {}))
        for i, path in enumerate(paths):
            found = []
            for f in clip_files(path, options):
                with storage.open_file(f, "rb", options) as fh:
                    pf = pq.ParquetFile(fh)
                    for rg in range(pf.num_row_groups):
                        t = pf.read_row_group(rg, columns=["split", "source", "label", "video_id"])
                        keep = np.ones(t.num_rows, dtype=bool)
                        if split is not None:
                            keep &= np.asarray(pc.equal(t["split"], split).fill_null(False))
                        if sources:
                            wanted = pc.is_in(t["source"], value_set=_arrow_strings(sources))
                            keep &= np.asarray(wanted.fill_null(False))
                        if labeled:
                            keep &= np.asarray(pc.is_valid(t["label"]))
                        rows = np.flatnonzero(keep)
                        if len(rows):
                            _, video = np.unique(t["video_id"].to_numpy(zero_copy_only=False)[rows],
                                                 return_inverse=True)
                            found.append(Chunk(i, f, rg, tuple(int(r) for r in rows), tuple(int(v) for v in video)))
            if not found:
                what = f"split {split!r}" + (f" and sources {sources}" if sources else "") + (
                    " with labels" if labeled else "")
                raise ValueError(f"data.path: {path} has no clips for {what}")
            index.chunks.append(found)
        return index

    def num_clips(self, dataset: int | None = None) -> int:
        groups = self.chunks if dataset is None else [self.chunks[dataset]]
        return sum(len(c.rows) for g in groups for c in g)


def _size(bounds: tuple[int, int]) -> int:
    return bounds[1] - bounds[0]


def _arrow_strings(values: list[str]):
    import pyarrow as pa

    return pa.array(values, type=pa.string())


@dataclass(frozen=True)
class Unit:
    """What one read task reads: a few chunks, and the order of their rows. `order` indexes the rows of all chunks
    concatenated (chunk 0's `rows`, then chunk 1's, ...)."""

    chunks: tuple[Chunk, ...]
    order: np.ndarray

    def __len__(self) -> int:
        return len(self.order)

    def rows(self) -> list[tuple[Chunk, int]]:
        """(chunk, row in its row group) of every row, in reading order."""
        flat = [(c, r) for c in self.chunks for r in c.rows]
        return [flat[int(j)] for j in self.order]


@dataclass(frozen=True)
class Piece:
    """Rows [start, stop) of run unit `unit` (in its reading order): what one read task of a stream reads."""

    unit: int
    start: int
    stop: int


class EpochPlan:
    """Endless seeded order over a ShardIndex. Units are (epoch, position in the epoch); unit u of the run is
    (u // units_per_epoch, u % units_per_epoch) because every epoch holds the same number of chunks."""

    def __init__(self, index: ShardIndex, seed: int, weights: list[float] | None = None, chunks_per_unit: int = 8):
        if chunks_per_unit < 1:
            raise ValueError("chunks_per_unit must be >= 1")
        self.index = index
        self.seed = int(seed)
        self.chunks_per_unit = int(chunks_per_unit)
        sizes = [index.num_clips(i) for i in range(len(index.chunks))]
        w = np.asarray(weights if weights is not None else sizes, dtype=float)
        share = w / w.sum()
        total = sum(sizes)
        # Chunks per epoch from dataset i: its share of one pass over everything, in its own mean chunk size.
        self.per_epoch = [
            0 if share[i] == 0 else max(1, round(share[i] * total / (sizes[i] / len(index.chunks[i]))))
            for i in range(len(sizes))
        ]
        self.chunks_per_epoch = sum(self.per_epoch)
        self.units_per_epoch = -(-self.chunks_per_epoch // self.chunks_per_unit)

    # ---------------------------------------------------------------------------------------- one epoch
    def _stream(self, dataset: int, start: int, count: int) -> list[int]:
        """Chunk ids `start .. start+count` of dataset's endless stream (a fresh permutation every cycle)."""
        n = len(self.index.chunks[dataset])
        out = []
        for k in range(start, start + count):
            cycle, pos = divmod(k, n)
            out.append(int(self._cycle(dataset, cycle)[pos]))
        return out

    @functools.lru_cache(maxsize=64)  # noqa: B019 - plans live for the run; the cache is the point
    def _cycle(self, dataset: int, cycle: int) -> np.ndarray:
        return np.random.default_rng([self.seed, dataset, cycle]).permutation(len(self.index.chunks[dataset]))

    @functools.lru_cache(maxsize=16)  # noqa: B019
    def epoch(self, e: int) -> list[Chunk]:
        chosen = [self.index.chunks[i][c] for i, k in enumerate(self.per_epoch) for c in self._stream(i, e * k, k)]
        order = np.random.default_rng([self.seed, _EPOCH_ORDER, e]).permutation(len(chosen))
        return [chosen[j] for j in order]

    def _group(self, e: int, pos: int) -> list[Chunk]:
        g = self.chunks_per_unit
        return self.epoch(e)[pos * g:(pos + 1) * g]

    def unit(self, u: int) -> Unit:
        """The chunks of run unit u and the order to read their rows in."""
        e, pos = divmod(u, self.units_per_epoch)
        chunks = self._group(e, pos)
        n = sum(len(c.rows) for c in chunks)
        order = np.random.default_rng([self.seed, _ROW_ORDER, e, pos]).permutation(n)
        # Spread the clips of a video: in the shuffled order, a video's first clip gets rank 0, its second rank 1, ...;
        # reading rank 0 of every video before any rank 1 keeps two clips of one video out of the same batch.
        video = np.concatenate([np.asarray(c.videos or range(len(c.rows))) * len(chunks) + k
                                for k, c in enumerate(chunks)])[order]
        rank = np.zeros(n, dtype=np.int64)
        seen: dict[int, int] = {}
        for j, v in enumerate(video.tolist()):
            rank[j] = seen.get(v, 0)
            seen[v] = rank[j] + 1
        return Unit(tuple(chunks), order[np.argsort(rank, kind="stable")])

    def unit_length(self, u: int) -> int:
        e, pos = divmod(u, self.units_per_epoch)
        return sum(len(c.rows) for c in self._group(e, pos))

    def unit_base(self, u: int) -> int:
        """Global seq of run unit u's first row."""
        e, pos = divmod(u, self.units_per_epoch)
        before = self.epoch(e)[:pos * self.chunks_per_unit]
        return sum(self.epoch_length(k) for k in range(e)) + sum(len(c.rows) for c in before)

    @functools.lru_cache(maxsize=4096)  # noqa: B019
    def epoch_length(self, e: int) -> int:
        return sum(len(c.rows) for c in self.epoch(e))

    # ---------------------------------------------------------------------------------------- positions
    def locate(self, seq: int) -> tuple[int, int, int]:
        """(unit, offset in the unit, seq of the unit's first row) of global sample `seq`."""
        if seq < 0:
            raise ValueError("seq must be >= 0")
        e, base = 0, 0
        while base + self.epoch_length(e) <= seq:
            base += self.epoch_length(e)
            e += 1
        u = e * self.units_per_epoch
        for _ in range(self.units_per_epoch):
            n = self.unit_length(u)
            if base + n > seq:
                return u, seq - base, base
            base += n
            u += 1
        raise AssertionError("unreachable: seq lies inside epoch e")

    def part(self, e: int, stream: int, streams: int) -> tuple[int, int]:
        """Stream `stream`'s share of epoch e: offsets [lo, hi) into the epoch's order."""
        n = self.epoch_length(e)
        return n * stream // streams, n * (stream + 1) // streams

    def stream_pieces(self, stream: int, streams: int, start: int, count: int) -> list[Piece]:
        """The unit slices stream `stream` of `streams` reads at its positions [start, start + count)."""
        if not 0 <= stream < streams:
            raise ValueError(f"stream {stream} of {streams}")
        if self.mean_epoch_length < streams:
            raise ValueError(f"{streams} streams over an epoch of {self.mean_epoch_length} clips")
        e, base, pos = 0, 0, start
        while pos >= (n := _size(self.part(e, stream, streams))):  # the epoch holding position `start`
            pos, base, e = pos - n, base + self.epoch_length(e), e + 1
        pieces: list[Piece] = []
        while count > 0:
            lo, hi = self.part(e, stream, streams)
            a = base + lo + pos
            b = min(base + hi, a + count)
            pieces += self._pieces(a, b)
            count -= b - a
            pos, base, e = 0, base + self.epoch_length(e), e + 1
        return pieces

    def _pieces(self, a: int, b: int) -> list[Piece]:
        """Unit slices covering seqs [a, b)."""
        out = []
        if a >= b:
            return out
        u, _, ubase = self.locate(a)
        while a < b:
            n = self.unit_length(u)
            stop = min(n, b - ubase)
            out.append(Piece(u, a - ubase, stop))
            a, ubase, u = ubase + stop, ubase + n, u + 1
        return out

    @property
    def mean_epoch_length(self) -> int:
        return self.epoch_length(0)
