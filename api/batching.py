"""Micro-batching: concurrent requests' clips share one model forward.

Items carry a `key`; only items with the same key are stacked (same operation, same clip shape, and for
reconstruction the same visible/decoded token counts, which the model needs to gather per batch). The oldest
waiting item decides the next batch: its key is served first (FIFO across keys), and the batch closes when it holds
`max_batch` items or when that item has waited `max_wait_s`. While one batch runs, new arrivals queue up, so under
load batches fill without waiting at all.

The forward runs in a single dedicated thread (torch parallelises inside it), never on the event loop, so health
checks and uploads keep being served while a batch computes. Items whose caller has given up (timeout, client gone)
are dropped before they reach the model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

RunBatch = Callable[[Hashable, list[Any]], Sequence[Any]]


@dataclass
class _Item:
    key: Hashable
    payload: Any
    future: asyncio.Future
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """`results = await batcher.run(key, payloads)`; `run_batch(key, payloads)` computes a list of results."""

    def __init__(self, run_batch: RunBatch, max_batch: int, max_wait_s: float,
                 on_batch: Callable[[Hashable, int, float], None] | None = None):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._pending: deque[_Item] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="videomae-model")
        self._task: asyncio.Task | None = None
        self.batches_run = 0

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        self._pending.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def run(self, key: Hashable, payloads: Sequence[Any]) -> list[Any]:
        """Queue every payload under `key` and wait for all results (in order). Cancelling cancels the rest."""
        if not self.running:
            raise RuntimeError("the batcher is not running")
        loop = asyncio.get_running_loop()
        items = [_Item(key, p, loop.create_future()) for p in payloads]
        self._pending.extend(items)
        self._arrived.set()
        try:
            return list(await asyncio.gather(*(i.future for i in items)))
        finally:
            for i in items:  # on timeout/cancel: the loop skips these instead of computing them
                if not i.future.done():
                    i.future.cancel()

    # ------------------------------------------------------------------------------------------- the worker loop
    def _drop_abandoned(self) -> None:
        while self._pending and self._pending[0].future.done():
            self._pending.popleft()

    def _count(self, key: Hashable) -> int:
        return sum(1 for i in self._pending if i.key == key and not i.future.done())

    def _take(self, key: Hashable) -> list[_Item]:
        batch, rest = [], deque()
        for item in self._pending:
            if item.future.done():
                continue
            if item.key == key and len(batch) < self.max_batch:
                batch.append(item)
            else:
                rest.append(item)
        self._pending = rest
        return batch

    async def _fill(self, first: _Item) -> None:
        """Wait until `first`'s batch is full or `first` has waited max_wait_s."""
        deadline = first.enqueued + self.max_wait_s
        while self._count(first.key) < self.max_batch and not first.future.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._drop_abandoned()
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            first = self._pending[0]
            await self._fill(first)
            batch = self._take(first.key)
            if not batch:
                continue
            started = time.monotonic()
            try:
                results = await loop.run_in_executor(self._executor, self._run_batch, first.key,
                                                     [i.payload for i in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
            except Exception as e:  # a failing batch fails its requests, never the loop
                log.exception("batch of %d failed", len(batch))
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(e)
                continue
            self.batches_run += 1
            if self._on_batch is not None:
                self._on_batch(first.key, len(batch), time.monotonic() - started)
            for item, result in zip(batch, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
