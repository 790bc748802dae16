"""Every `Batcher` behaves alike: the same answers as the model, empty jobs answered at once,
concurrent jobs each answered with their own, a bounded queue, abandoned jobs never decoded,
and a request larger than a batch interleaved with the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch
from conftest import number_pairs, slow_down

from seq2seq import SearchOptions, Translator
from serve.batching import Batcher, BatchLimits, BatchStats, Job, QueueFullError
from serve.batching.loading import Loading, ModelCall
from serve.batching.pool import BatcherPool
from serve.batching.process import ProcessBatcher
from serve.batching.thread import ThreadBatcher
from serve.settings import Settings

T = TypeVar("T")
KINDS = ["thread", "process", "pool"]
TEXTS = [source for source, _ in number_pairs(12, seed=3)]


@dataclass(frozen=True)
class SlowLoading(Loading):
    """The model, every decoder step of which takes `delay` seconds longer (also in a child)."""

    delay: float = 0.0

    def load(self) -> Translator:
        translator = super().load()
        if self.delay:
            slow_down(translator, self.delay)
        return translator


def make(kind: str, path: Path, limits: BatchLimits, delay: float, stats: list[Any]) -> Batcher:
    loading = SlowLoading(str(path), "cpu", threads=1, delay=delay)
    if kind == "process":
        return ProcessBatcher(loading, limits, on_batch=stats.append)
    members = [
        ThreadBatcher(ModelCall(loading.load(), limits, 1), limits, on_batch=stats.append)
        for _ in range(1 if kind == "thread" else 2)
    ]
    return members[0] if kind == "thread" else BatcherPool(members)


def run(
    kind: str,
    path: Path,
    body: Callable[[Batcher], Awaitable[T]],
    *,
    limits: BatchLimits | None = None,
    delay: float = 0.0,
) -> tuple[T, list[BatchStats]]:
    """`body` against a started batcher of `kind`; its result and the batches' stats."""
    stats: list[BatchStats] = []

    async def main() -> T:
        batcher = make(kind, path, limits or BatchLimits(max_wait_ms=20), delay, stats)
        await batcher.start()
        try:
            return await body(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(main()), stats


@pytest.fixture(scope="module")
def translator(tiny_checkpoint_path: Path) -> Translator:
    return Translator.load(tiny_checkpoint_path, device="cpu")


@pytest.mark.parametrize("kind", KINDS)
def test_answers_are_the_models_and_each_job_gets_its_own(
    kind: str, tiny_checkpoint_path: Path, translator: Translator
) -> None:
    greedy, ranked = SearchOptions(beam_size=1), SearchOptions(beam_size=3, n_best=3)
    jobs = [(translator.encode(TEXTS[i : i + 3]), greedy if i % 2 else ranked) for i in range(8)]

    async def body(batcher: Batcher) -> list[Any]:
        return await asyncio.gather(*(batcher.submit(ids, options) for ids, options in jobs))

    results, _ = run(kind, tiny_checkpoint_path, body)
    assert results == [translator.translate_ids(ids, options) for ids, options in jobs]
    assert all(len(candidates) == 3 for candidates in results[0])


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_job_is_answered_at_once(kind: str, tiny_checkpoint_path: Path) -> None:
    async def body(batcher: Batcher) -> tuple[Any, float]:
        started = time.monotonic()
        answer = await asyncio.wait_for(batcher.submit([], SearchOptions(beam_size=1)), 5)
        return answer, time.monotonic() - started

    (answer, seconds), stats = run(kind, tiny_checkpoint_path, body, delay=1.0)
    assert answer == [] and seconds < 0.5 and not stats


@pytest.mark.parametrize("kind", KINDS)
def test_the_queue_holds_at_most_max_queue_size_waiting_jobs(
    kind: str, tiny_checkpoint_path: Path, translator: Translator
) -> None:
    ids, options = translator.encode(["eins zwei drei vier"]), SearchOptions(beam_size=1)
    limits = BatchLimits(max_wait_ms=0, max_batch_size=1, max_queue_size=2)
    members = 2 if kind == "pool" else 1

    async def body(batcher: Batcher) -> list[Any]:
        busy = [asyncio.ensure_future(batcher.submit(ids, options)) for _ in range(members)]
        await asyncio.sleep(0.2)  # the decoders are busy with those (5 steps of 0.15 s)
        waiting = [asyncio.ensure_future(batcher.submit(ids, options)) for _ in range(3 * members)]
        return await asyncio.gather(*busy, *waiting, return_exceptions=True)

    results, _ = run(kind, tiny_checkpoint_path, body, limits=limits, delay=0.15)
    full = [result for result in results if isinstance(result, QueueFullError)]
    assert len(full) == members and all("2 requests are waiting" in str(e) for e in full)
    assert results.count(translator.translate_ids(ids, options)) == 3 * members


@pytest.mark.parametrize("kind", KINDS)
def test_abandoned_jobs_are_not_decoded(
    kind: str, tiny_checkpoint_path: Path, translator: Translator
) -> None:
    options = SearchOptions(beam_size=1)
    texts = ("eins zwei drei vier fünf", "zwei drei", "vier")
    first, gone, kept = (translator.encode([text]) for text in texts)

    async def body(batcher: Batcher) -> Any:
        running = asyncio.ensure_future(batcher.submit(first, options))
        await asyncio.sleep(0.2)  # the decoder is busy with it (6 steps of 0.1 s)
        abandoned = [asyncio.ensure_future(batcher.submit(gone, options)) for _ in range(3)]
        waiting = asyncio.ensure_future(batcher.submit(kept, options))
        await asyncio.sleep(0.05)
        for task in abandoned:
            task.cancel()
        return await asyncio.gather(running, waiting)

    limits = BatchLimits(max_wait_ms=0, max_batch_size=1)
    results, stats = run(kind, tiny_checkpoint_path, body, limits=limits, delay=0.1)
    assert results[1] == translator.translate_ids(kept, options)
    if kind != "pool":  # a pool's idle member may take an abandoned job before it goes
        assert sum(stat.sentences for stat in stats) == 2


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_a_job_larger_than_a_batch_lets_others_in_between(
    kind: str, tiny_checkpoint_path: Path, translator: Translator
) -> None:
    options = SearchOptions(beam_size=1)
    big, small = translator.encode(TEXTS[:8]), translator.encode(["neun"])

    async def body(batcher: Batcher) -> tuple[float, float, Any]:
        started = time.monotonic()
        large = asyncio.ensure_future(batcher.submit(big, options))
        await asyncio.sleep(0.1)
        answer = await batcher.submit(small, options)
        small_done = time.monotonic() - started
        await large
        return small_done, time.monotonic() - started, answer

    limits = BatchLimits(max_wait_ms=0, max_batch_size=2)
    (small_done, large_done, answer), stats = run(
        kind, tiny_checkpoint_path, body, limits=limits, delay=0.02
    )
    assert answer == translator.translate_ids(small, options)
    assert small_done < 0.75 * large_done  # answered between two batches of the big one
    assert max(stat.rows for stat in stats) <= 2


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_a_timed_out_job_stops_costing_decoder_time(
    kind: str, tiny_checkpoint_path: Path, translator: Translator
) -> None:
    options = SearchOptions(beam_size=4)
    big, small = translator.encode(TEXTS * 4), translator.encode(["neun"])

    async def body(batcher: Batcher) -> float:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(batcher.submit(big, options), 0.3)
        started = time.monotonic()
        await batcher.submit(small, options)
        return time.monotonic() - started

    limits = BatchLimits(max_wait_ms=0, max_batch_size=64)
    seconds, _ = run(kind, tiny_checkpoint_path, body, limits=limits, delay=0.1)
    # The big batch (48 sentences x 4 beams, about 10 steps of 0.1 s) stopped at its next
    # step; the small one needs about 5.
    assert seconds < 0.9


def test_job_takes_what_fits_and_at_least_one_sentence() -> None:
    limits = BatchLimits(max_batch_size=3, max_batch_tokens=10)
    loop = asyncio.new_event_loop()
    job = Job([[1] * 4, [1] * 4, [1] * 20, [1]], SearchOptions(), loop.create_future())
    assert list(job.take(limits, 0, 0)) == [0, 1]
    assert list(job.take(limits, 0, 0)) == [2]  # too long alone, but a batch takes one
    assert list(job.take(limits, 3, 0)) == [] and job.waiting == 1  # the batch is full
    assert list(job.take(limits, 1, 1)) == [3] and job.waiting == 0
    loop.close()


def test_limits_fit() -> None:
    limits = BatchLimits(max_batch_size=2, max_batch_tokens=5)
    assert limits.fits(2, 5) and not limits.fits(3, 1) and not limits.fits(1, 6)


def test_small_batches_decode_on_one_thread(tiny_checkpoint_path: Path) -> None:
    translator = Translator.load(tiny_checkpoint_path, device="cpu")
    seen: list[int] = []
    search = translator.translate_ids

    def counting(*args: Any, **kwargs: Any) -> list[list[str]]:
        seen.append(torch.get_num_threads())
        return search(*args, **kwargs)

    translator.translate_ids = counting  # type: ignore[method-assign]
    call = ModelCall(translator, BatchLimits(one_thread_rows=4), threads=2)
    sources, before = translator.encode(TEXTS[:5]), torch.get_num_threads()
    try:
        call(sources[:4], SearchOptions(beam_size=1), lambda: False)  # 4 rows
        call(sources[:5], SearchOptions(beam_size=1), lambda: False)  # 5 rows
        call(sources[:2], SearchOptions(beam_size=3), lambda: False)  # 6 rows
        call(sources[:1], SearchOptions(beam_size=3), lambda: False)  # 3 rows
    finally:
        torch.set_num_threads(before)
    assert seen == [1, 2, 2, 1]


@pytest.mark.parametrize(
    ("given", "precision", "rows"), [(None, "fp32", 32), (None, "int8", 40), (7, "int8", 7)]
)
def test_one_thread_rows_reach_the_limits(
    tiny_checkpoint_path: Path, given: int | None, precision: str, rows: int
) -> None:
    model = [str(tiny_checkpoint_path)]
    settings = Settings(model=model, one_thread_rows=given, precision=precision)
    assert BatchLimits.from_settings(settings).one_thread_rows == rows
