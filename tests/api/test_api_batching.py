"""The micro-batcher on a real event loop and a real worker thread: batches fill up to max_batch within max_wait,
keys never mix, abandoned items are skipped, failures reach their callers, and the loop stays responsive."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from api.batching import MicroBatcher


class Recorder:
    """A batch function: doubles numbers, remembering every batch it was given and the thread it ran on."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None):
        self.batches: list[tuple[object, list[int]]] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.fail_on = fail_on
        self.gate = threading.Event()  # a payload of -1 holds its batch until the test opens the gate

    def __call__(self, key, payloads):
        self.batches.append((key, list(payloads)))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if -1 in payloads:
            self.gate.wait(10)
        if self.fail_on is not None and self.fail_on in payloads:
            raise ValueError(f"cannot handle {self.fail_on}")
        return [2 * p for p in payloads]


def run(coro):
    return asyncio.run(coro)


def test_concurrent_items_share_a_batch_and_results_keep_their_order():
    rec = Recorder()

    async def main():
        b = MicroBatcher(rec, max_batch=4, max_wait_s=0.2)
        b.start()
        results = await asyncio.gather(b.run("k", [1, 2]), b.run("k", [3]), b.run("k", [4, 5, 6]))
        await b.stop()
        return results

    assert run(main()) == [[2, 4], [6], [8, 10, 12]]
    sizes = [len(p) for _, p in rec.batches]
    assert sizes == [4, 2] and sum(sizes) == 6
    assert rec.threads == {"videomae-model_0"}  # never the event loop's thread


def test_max_batch_one_runs_items_alone_and_keys_never_mix():
    rec = Recorder()

    async def main():
        b = MicroBatcher(rec, max_batch=1, max_wait_s=0.05)
        b.start()
        await asyncio.gather(b.run("a", [1, 2]), b.run("b", [3]))
        await b.stop()

    run(main())
    assert all(len(p) == 1 for _, p in rec.batches) and len(rec.batches) == 3

    rec = Recorder()

    async def mixed():
        b = MicroBatcher(rec, max_batch=8, max_wait_s=0.05)
        b.start()
        await asyncio.gather(b.run("a", [1]), b.run("b", [2]), b.run("a", [3]))
        await b.stop()

    run(mixed())
    assert sorted((k, p) for k, p in rec.batches) == [("a", [1, 3]), ("b", [2])]


def test_a_lone_item_waits_at_most_max_wait():
    async def main():
        b = MicroBatcher(Recorder(), max_batch=64, max_wait_s=0.05)
        b.start()
        t = time.monotonic()
        assert await b.run("k", [1]) == [2]
        waited = time.monotonic() - t
        await b.stop()
        return waited

    assert run(main()) < 5.0  # bounded (not timing-precise: the machine is shared); a stuck batch would hang here


def test_abandoned_items_are_not_computed_and_failures_reach_callers():
    rec = Recorder(delay=0.3, fail_on=13)

    async def main():
        b = MicroBatcher(rec, max_batch=1, max_wait_s=0.0)
        b.start()
        first = asyncio.ensure_future(b.run("k", [1]))  # occupies the model thread for 0.3 s
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(b.run("k", [99]), 0.05)  # gives up while queued
        with pytest.raises(ValueError, match="cannot handle 13"):
            await b.run("k", [13])
        assert await first == [2]
        # The loop keeps running coroutines while a batch is held in the model thread.
        held = asyncio.ensure_future(b.run("k", [-1]))
        while len(rec.batches) < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        responsive = not held.done()
        rec.gate.set()
        assert await held == [-2]
        await b.stop()
        return responsive

    assert run(main())
    assert [p for _, p in rec.batches] == [[1], [13], [-1]]  # 99 never reached the model
