"""Micro-batching: concurrent requests share translate calls, each gets its own answer."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from conftest import number_pairs

from seq2seq import Translator
from serve.app import create_app
from serve.batching import Batcher, BatchLimits, BatchStats, QueueFullError
from serve.settings import Settings

T = TypeVar("T")


class Recorder:
    """A fake translate function: upper-cases (`#k` marks the k-th other candidate), records
    each call's texts and options, can be held at a gate."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], int]] = []
        self.options: list[tuple[int, int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, texts: list[str], beam_size: int, n_best: int) -> list[str]:
        self.gate.wait(5)
        self.calls.append((list(texts), beam_size))
        self.options.append((beam_size, n_best))
        if "boom" in texts:
            raise RuntimeError("model exploded")
        marks = [""] + [f"#{rank}" for rank in range(1, n_best)]
        return [f"{text.upper()}/{beam_size}{mark}" for text in texts for mark in marks]


def run_with(
    limits: BatchLimits, body: Callable[[Batcher, Recorder], Awaitable[T]]
) -> tuple[T, Recorder, list[BatchStats]]:
    """Run `body` against a started batcher with a recording translate function."""
    recorder, stats = Recorder(), []

    async def main() -> T:
        batcher = Batcher(recorder, limits, on_batch=stats.append)
        batcher.start()
        try:
            return await body(batcher, recorder)
        finally:
            await batcher.stop()

    return asyncio.run(main()), recorder, stats


def test_concurrent_requests_share_one_call() -> None:
    async def body(batcher: Batcher, _: Recorder) -> list[list[str]]:
        return await asyncio.gather(
            *(batcher.submit([f"t{i}", f"u{i}"], tokens=2, beam_size=1) for i in range(10))
        )

    results, recorder, stats = run_with(BatchLimits(max_wait_ms=50), body)
    assert results == [[f"T{i}/1", f"U{i}/1"] for i in range(10)]
    assert len(recorder.calls) == 1 and stats[0].sentences == 20 and stats[0].tokens == 20


def test_beam_sizes_are_never_mixed() -> None:
    async def body(batcher: Batcher, _: Recorder) -> list[list[str]]:
        return await asyncio.gather(
            *(batcher.submit([f"t{i}"], tokens=1, beam_size=1 + i % 3) for i in range(9))
        )

    results, recorder, _ = run_with(BatchLimits(max_wait_ms=50), body)
    assert results == [[f"T{i}/{1 + i % 3}"] for i in range(9)]
    assert sorted(beam for _, beam in recorder.calls) == [1, 2, 3]
    for texts, beam in recorder.calls:
        assert all(int(text[1:]) % 3 == beam - 1 for text in texts)


def test_candidates_per_sentence_are_never_mixed_and_come_back_per_job() -> None:
    async def body(batcher: Batcher, _: Recorder) -> list[list[str]]:
        return await asyncio.gather(
            batcher.submit(["a", "b"], tokens=2, beam_size=3, n_best=3),
            batcher.submit(["c"], tokens=1, beam_size=3),
            batcher.submit(["d"], tokens=1, beam_size=3, n_best=3),
            batcher.submit(["e"], tokens=1, beam_size=3, n_best=2),
        )

    results, recorder, stats = run_with(BatchLimits(max_wait_ms=50), body)
    assert results == [
        ["A/3", "A/3#1", "A/3#2", "B/3", "B/3#1", "B/3#2"],
        ["C/3"],
        ["D/3", "D/3#1", "D/3#2"],
        ["E/3", "E/3#1"],
    ]
    assert sorted(recorder.options) == [(3, 1), (3, 2), (3, 3)]
    assert [texts for texts, _ in recorder.calls if len(texts) == 3] == [["a", "b", "d"]]
    assert sum(stat.sentences for stat in stats) == 5  # sentences, not candidates


def test_a_big_request_is_translated_alone() -> None:
    async def body(batcher: Batcher, _: Recorder) -> list[str]:
        return await batcher.submit([f"t{i}" for i in range(7)], tokens=7, beam_size=1)

    result, recorder, _ = run_with(BatchLimits(max_batch_size=4), body)
    assert len(result) == 7 and len(recorder.calls) == 1


@pytest.mark.parametrize(("rejoin_wait_ms", "sizes"), [(1000, [8, 8]), (0, [8, 2, 6])])
def test_next_batch_waits_for_the_clients_just_answered(
    rejoin_wait_ms: float, sizes: list[int]
) -> None:
    async def body(batcher: Batcher, _: Recorder) -> None:
        await asyncio.gather(*(batcher.submit([f"a{i}"], tokens=1, beam_size=1) for i in range(8)))

        async def client(i: int) -> list[str]:
            await asyncio.sleep(0 if i < 2 else 0.1)  # six of the eight answered come back late
            return await batcher.submit([f"b{i}"], tokens=1, beam_size=1)

        await asyncio.gather(*(client(i) for i in range(8)))

    limits = BatchLimits(max_wait_ms=5, rejoin_wait_ms=rejoin_wait_ms)
    _, recorder, _ = run_with(limits, body)
    assert [len(texts) for texts, _ in recorder.calls] == sizes


def test_full_queue_raises() -> None:
    async def body(batcher: Batcher, recorder: Recorder) -> list[Any]:
        recorder.gate.clear()  # the first job holds the worker
        first = asyncio.ensure_future(batcher.submit(["a"], tokens=1, beam_size=1))
        await asyncio.sleep(0.05)
        queued = [asyncio.ensure_future(batcher.submit([x], tokens=1, beam_size=1)) for x in "bc"]
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError, match="2 requests are waiting"):
            await batcher.submit(["d"], tokens=1, beam_size=1)
        recorder.gate.set()
        return await asyncio.gather(first, *queued)

    results, _, _ = run_with(BatchLimits(max_queue_size=2, max_batch_size=1), body)
    assert results == [["A/1"], ["B/1"], ["C/1"]]


def test_cancelled_requests_are_skipped_and_forgotten() -> None:
    async def body(batcher: Batcher, recorder: Recorder) -> tuple[list[str], int]:
        recorder.gate.clear()
        first = asyncio.ensure_future(batcher.submit(["a"], tokens=1, beam_size=1))
        await asyncio.sleep(0.05)
        abandoned = [
            asyncio.ensure_future(batcher.submit([x], tokens=1, beam_size=1)) for x in "bcd"
        ]
        kept = asyncio.ensure_future(batcher.submit(["e"], tokens=1, beam_size=1))
        await asyncio.sleep(0)
        for task in abandoned:
            task.cancel()
        recorder.gate.set()
        result = await kept
        await first
        return result, batcher.depth

    (result, depth), recorder, _ = run_with(BatchLimits(max_wait_ms=20), body)
    assert result == ["E/1"] and depth == 0
    assert [texts for texts, _ in recorder.calls] == [["a"], ["e"]]


def test_a_failing_call_fails_its_requests_and_the_worker_goes_on() -> None:
    async def body(batcher: Batcher, _: Recorder) -> list[str]:
        failed = await asyncio.gather(
            batcher.submit(["boom"], tokens=1, beam_size=1),
            batcher.submit(["x"], tokens=1, beam_size=1),
            return_exceptions=True,
        )
        assert all(isinstance(error, RuntimeError) for error in failed)
        return await batcher.submit(["y"], tokens=1, beam_size=1)

    result, _, _ = run_with(BatchLimits(max_wait_ms=20), body)
    assert result == ["Y/1"]


# --- through the app ---------------------------------------------------------------------------


@pytest.mark.parametrize("batching", ["continuous", "static"])
def test_simultaneous_http_requests_are_batched_and_answered_correctly(
    tiny_checkpoint_path: Path, batching: str
) -> None:
    texts = [source for source, _ in number_pairs(48, seed=7)]
    translator = Translator.load(tiny_checkpoint_path, device="cpu")
    expected = [translator.translate([text], beam_size=1)[0] for text in texts]
    settings = Settings(
        model=str(tiny_checkpoint_path), device="cpu", max_wait_ms=20, batching=batching
    )
    app = create_app(settings)

    async def main() -> tuple[list[httpx.Response], str]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            responses = await asyncio.gather(
                *(client.post("/translate", json={"text": text}) for text in texts)
            )
            return list(responses), (await client.get("/metrics")).text

    responses, metrics = asyncio.run(main())
    assert [response.json()["translation"] for response in responses] == expected
    calls = float(re.search(r"^seq2seq_batch_size_sentences_count (\S+)$", metrics, re.M)[1])
    rows = float(re.search(r"^seq2seq_batch_size_sentences_sum (\S+)$", metrics, re.M)[1])
    assert rows / calls > 2  # sentences were decoded together (per call, or per step)
    assert re.search(r'^seq2seq_batch_size_sentences_bucket\{le="1.0"\} (\S+)$', metrics, re.M)


def test_a_lone_client_is_not_delayed_by_the_batch_wait() -> None:
    """With no other client active, waiting for company would only add latency."""

    async def body(batcher: Batcher, _: Recorder) -> list[float]:
        seconds = []
        for i in range(3):
            started = asyncio.get_running_loop().time()
            await batcher.submit([f"t{i}"], tokens=1, beam_size=1)
            seconds.append(asyncio.get_running_loop().time() - started)
        return seconds

    seconds, recorder, _ = run_with(BatchLimits(max_wait_ms=2000), body)
    assert max(seconds) < 1.0 and len(recorder.calls) == 3
