"""The thread batcher's scheduling, with a recording translate function: what shares a call,
how long a batch waits for company, what a failing call does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from seq2seq import SearchOptions
from seq2seq.search import StopFn
from serve.batching import BatchLimits, BatchStats, Ranked
from serve.batching.thread import ThreadBatcher

T = TypeVar("T")
BOOM = 666


def beam(size: int, n_best: int = 1) -> SearchOptions:
    return SearchOptions(beam_size=size, n_best=n_best)


class Recorder:
    """A fake translate function: 'source ids/beam' (`#k` marks the k-th other candidate);
    records each call's sources and options, can be held at a gate."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[list[int]], SearchOptions]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, sources: list[list[int]], options: SearchOptions, stop: StopFn) -> Ranked:
        self.gate.wait(5)
        self.calls.append((list(sources), options))
        if [BOOM] in sources:
            raise RuntimeError("model exploded")
        marks = [""] + [f"#{rank}" for rank in range(1, options.n_best)]
        return [[f"{ids}/{options.beam_size}{mark}" for mark in marks] for ids in sources]


def run_with(
    limits: BatchLimits, body: Callable[[ThreadBatcher, Recorder], Awaitable[T]]
) -> tuple[T, Recorder, list[BatchStats]]:
    """Run `body` against a started batcher with a recording translate function."""
    recorder, stats = Recorder(), []

    async def main() -> T:
        batcher = ThreadBatcher(recorder, limits, on_batch=stats.append)
        await batcher.start()
        try:
            return await body(batcher, recorder)
        finally:
            await batcher.stop()

    return asyncio.run(main()), recorder, stats


def test_concurrent_requests_share_one_call() -> None:
    async def body(batcher: ThreadBatcher, _: Recorder) -> list[Ranked]:
        jobs = (batcher.submit([[i], [100 + i]], beam(1)) for i in range(10))
        return await asyncio.gather(*jobs)

    results, recorder, stats = run_with(BatchLimits(max_wait_ms=50), body)
    assert results == [[[f"[{i}]/1"], [f"[{100 + i}]/1"]] for i in range(10)]
    assert len(recorder.calls) == 1 and stats[0].sentences == 20 and stats[0].tokens == 20


def test_options_are_never_mixed_and_answers_come_back_per_job() -> None:
    async def body(batcher: ThreadBatcher, _: Recorder) -> list[Ranked]:
        return await asyncio.gather(
            batcher.submit([[1], [2]], beam(3, 3)),
            batcher.submit([[3]], beam(3)),
            batcher.submit([[4]], beam(3, 3)),
            batcher.submit([[5]], beam(2)),
        )

    results, recorder, stats = run_with(BatchLimits(max_wait_ms=50), body)
    assert results == [
        [["[1]/3", "[1]/3#1", "[1]/3#2"], ["[2]/3", "[2]/3#1", "[2]/3#2"]],
        [["[3]/3"]],
        [["[4]/3", "[4]/3#1", "[4]/3#2"]],
        [["[5]/2"]],
    ]
    assert sorted((o.beam_size, o.n_best) for _, o in recorder.calls) == [(2, 1), (3, 1), (3, 3)]
    assert [sources for sources, o in recorder.calls if o.n_best == 3] == [[[1], [2], [4]]]
    assert sum(stat.sentences for stat in stats) == 5  # sentences, not candidates


def test_a_big_request_is_decoded_a_batch_at_a_time() -> None:
    async def body(batcher: ThreadBatcher, _: Recorder) -> Ranked:
        return await batcher.submit([[i] for i in range(7)], beam(1))

    result, recorder, _ = run_with(BatchLimits(max_batch_size=3), body)
    assert result == [[f"[{i}]/1"] for i in range(7)]
    assert [len(sources) for sources, _ in recorder.calls] == [3, 3, 1]


def test_token_budget_splits_batches() -> None:
    async def body(batcher: ThreadBatcher, _: Recorder) -> Ranked:
        return await batcher.submit([[1] * 4, [2] * 4, [3] * 4], beam(1))

    _, recorder, _ = run_with(BatchLimits(max_batch_tokens=8), body)
    assert [len(sources) for sources, _ in recorder.calls] == [2, 1]


@pytest.mark.parametrize(("rejoin_wait_ms", "sizes"), [(1000, [8, 8]), (0, [8, 2, 6])])
def test_next_batch_waits_for_the_clients_just_answered(
    rejoin_wait_ms: float, sizes: list[int]
) -> None:
    async def body(batcher: ThreadBatcher, _: Recorder) -> None:
        await asyncio.gather(*(batcher.submit([[i]], beam(1)) for i in range(8)))

        async def client(i: int) -> Ranked:
            await asyncio.sleep(0 if i < 2 else 0.1)  # six of the eight answered come back late
            return await batcher.submit([[10 + i]], beam(1))

        await asyncio.gather(*(client(i) for i in range(8)))

    limits = BatchLimits(max_wait_ms=5, rejoin_wait_ms=rejoin_wait_ms)
    _, recorder, _ = run_with(limits, body)
    assert [len(sources) for sources, _ in recorder.calls] == sizes


def test_the_next_batch_starts_once_the_clients_just_answered_are_back() -> None:
    """Eight closed-loop clients: once all eight are back, nobody else is known to be coming,
    so the batch does not wait out `max_wait_ms` for more."""

    async def body(batcher: ThreadBatcher, _: Recorder) -> float:
        await asyncio.gather(*(batcher.submit([[i]], beam(1)) for i in range(8)))
        started = asyncio.get_running_loop().time()

        async def client(i: int) -> Ranked:
            await asyncio.sleep(0.005 * i)  # back one after another, as over HTTP
            return await batcher.submit([[10 + i]], beam(1))

        await asyncio.gather(*(client(i) for i in range(8)))
        return asyncio.get_running_loop().time() - started

    limits = BatchLimits(max_wait_ms=3000, rejoin_wait_ms=3000)
    seconds, recorder, _ = run_with(limits, body)
    assert [len(sources) for sources, _ in recorder.calls] == [8, 8]
    assert seconds < 1.0


def test_cancelled_requests_are_skipped_and_forgotten() -> None:
    async def body(batcher: ThreadBatcher, recorder: Recorder) -> tuple[Ranked, int]:
        recorder.gate.clear()
        first = asyncio.ensure_future(batcher.submit([[1]], beam(1)))
        await asyncio.sleep(0.05)
        abandoned = [asyncio.ensure_future(batcher.submit([[i]], beam(1))) for i in (2, 3, 4)]
        kept = asyncio.ensure_future(batcher.submit([[5]], beam(1)))
        await asyncio.sleep(0)
        for task in abandoned:
            task.cancel()
        recorder.gate.set()
        result = await kept
        await first
        return result, batcher.depth

    (result, depth), recorder, _ = run_with(BatchLimits(max_wait_ms=20), body)
    assert result == [["[5]/1"]] and depth == 0
    assert [sources for sources, _ in recorder.calls] == [[[1]], [[5]]]


def test_a_failing_call_fails_its_requests_and_the_worker_goes_on() -> None:
    async def body(batcher: ThreadBatcher, _: Recorder) -> Ranked:
        failed = await asyncio.gather(
            batcher.submit([[BOOM]], beam(1)),
            batcher.submit([[1]], beam(1)),
            return_exceptions=True,
        )
        assert all(isinstance(error, RuntimeError) for error in failed)
        return await batcher.submit([[2]], beam(1))

    result, _, _ = run_with(BatchLimits(max_wait_ms=20), body)
    assert result == [["[2]/1"]]


def test_a_lone_client_is_not_delayed_by_the_batch_wait() -> None:
    """With no other client active, waiting for company would only add latency."""

    async def body(batcher: ThreadBatcher, _: Recorder) -> list[float]:
        seconds = []
        for i in range(3):
            started = asyncio.get_running_loop().time()
            await batcher.submit([[i]], beam(1))
            seconds.append(asyncio.get_running_loop().time() - started)
        return seconds

    seconds, recorder, _ = run_with(BatchLimits(max_wait_ms=2000), body)
    assert max(seconds) < 1.0 and len(recorder.calls) == 3


def test_stopping_fails_what_waits() -> None:
    async def body(batcher: ThreadBatcher, recorder: Recorder) -> list[object]:
        recorder.gate.clear()
        jobs = [asyncio.ensure_future(batcher.submit([[i]], beam(1))) for i in range(3)]
        await asyncio.sleep(0.05)
        threading.Timer(0.1, recorder.gate.set).start()
        await batcher.stop()
        return await asyncio.gather(*jobs, return_exceptions=True)

    results, _, _ = run_with(BatchLimits(max_wait_ms=0, max_batch_size=1), body)
    assert all(isinstance(error, RuntimeError) for error in results)  # the one decoding too
    assert all("shutting down" in str(error) for error in results)
