"""Continuous batching: requests join a running batch, leave it when done or abandoned."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import torch
from conftest import number_pairs

from seq2seq import EOS_ID, Translator
from serve.batching import BatchLimits, BatchStats, QueueFullError
from serve.continuous import ContinuousBatcher
from serve.settings import Settings
from serve.worker import decode

T = TypeVar("T")
TEXTS = [source for source, _ in number_pairs(12, seed=3)]


@pytest.fixture(scope="module")
def translator(tiny_checkpoint_path: Path) -> Translator:
    return Translator.load(tiny_checkpoint_path, device="cpu")


@pytest.fixture(scope="module")
def endless(translator: Translator) -> Translator:
    """The tiny model with END made impossible: every output is as long as its limit."""
    model = copy.deepcopy(translator.model)
    with torch.no_grad():
        model.decoder.output.bias[EOS_ID] = -1e4
    return Translator(model, translator.tokenizers, device="cpu")


def run_with(
    translator: Translator,
    body: Callable[[ContinuousBatcher], Awaitable[T]],
    limits: BatchLimits | None = None,
    step_seconds: float = 0.0,
    gate: threading.Event | None = None,
) -> tuple[T, list[BatchStats], list[tuple[list[list[int]], int]]]:
    """Run `body` against a started batcher; beam calls and stats are recorded."""
    stats: list[BatchStats] = []
    static_calls: list[tuple[list[list[int]], int]] = []

    def translate(sources: list[list[int]], beam_size: int, n_best: int) -> list[str]:
        static_calls.append((sources, beam_size))
        return decode(translator, Settings(), sources, beam_size, n_best)

    async def main() -> T:
        batcher = ContinuousBatcher(
            translator,
            limits or BatchLimits(max_wait_ms=5),
            translate=translate,
            on_batch=stats.append,
        )
        if step_seconds or gate:
            step = batcher.stream.step

            def slow_step() -> Any:
                if gate is not None:
                    gate.wait(5)  # the test holds the worker here
                time.sleep(step_seconds)
                return step()

            batcher.stream.step = slow_step  # type: ignore[method-assign]
        batcher.start()
        try:
            return await body(batcher)
        finally:
            await batcher.stop()

    return asyncio.run(main()), stats, static_calls


async def submit(
    batcher: ContinuousBatcher,
    translator: Translator,
    texts: list[str],
    beam_size: int = 1,
    n_best: int = 1,
) -> list[str]:
    sources = translator.encode(texts)
    tokens = sum(map(len, sources))
    return await batcher.submit(sources, tokens=tokens, beam_size=beam_size, n_best=n_best)


def test_concurrent_requests_get_their_own_translations(translator: Translator) -> None:
    async def body(batcher: ContinuousBatcher) -> list[list[str]]:
        requests = [submit(batcher, translator, [text]) for text in TEXTS]
        requests.append(submit(batcher, translator, TEXTS[:5]))  # several texts, in order
        return list(await asyncio.gather(*requests))

    results, stats, _ = run_with(translator, body)
    assert results[:-1] == [[text] for text in translator.translate(TEXTS, beam_size=1)]
    assert results[-1] == translator.translate(TEXTS[:5], beam_size=1)
    assert max(stat.rows for stat in stats) > 1  # sentences were decoded together
    assert sum(stat.sentences for stat in stats) == len(TEXTS) + 5


def test_a_short_request_overtakes_a_long_one_that_started_first(endless: Translator) -> None:
    long_text, short_text = " ".join(["eins"] * 12), "eins"

    async def body(batcher: ContinuousBatcher) -> list[str]:
        order: list[str] = []

        async def timed(text: str) -> None:
            await submit(batcher, endless, [text])
            order.append(text)

        first = asyncio.ensure_future(timed(long_text))
        await asyncio.sleep(0.05)  # the long sentence is being decoded
        await asyncio.gather(first, timed(short_text))
        return order

    order, stats, _ = run_with(endless, body, step_seconds=0.005)
    assert order == [short_text, long_text]
    assert any(stat.rows == 2 for stat in stats)  # the short one joined the running batch


def test_wider_beams_run_as_static_batches_between_steps(endless: Translator) -> None:
    gate = threading.Event()

    async def body(batcher: ContinuousBatcher) -> list[list[str]]:
        running = asyncio.ensure_future(submit(batcher, endless, TEXTS[8:9]))
        await asyncio.sleep(0.02)  # its first step waits at the gate while the others queue
        others = [
            asyncio.ensure_future(submit(batcher, endless, TEXTS[:3], beam_size=4)),
            asyncio.ensure_future(submit(batcher, endless, TEXTS[3:6])),
            asyncio.ensure_future(submit(batcher, endless, TEXTS[6:8], beam_size=4)),
        ]
        for _ in range(1000):  # the greedy one goes to the encoder; the beam ones wait
            if batcher.depth == 2:
                break
            await asyncio.sleep(0.005)
        gate.set()
        return list(await asyncio.gather(*others, running))

    results, _, static_calls = run_with(endless, body, gate=gate)
    assert results[0] == endless.translate(TEXTS[:3], beam_size=4)
    assert results[1] == endless.translate(TEXTS[3:6], beam_size=1)
    assert results[2] == endless.translate(TEXTS[6:8], beam_size=4)
    assert results[3] == endless.translate(TEXTS[8:9], beam_size=1)
    assert [(len(sources), beam) for sources, beam in static_calls] == [(5, 4)]  # one call


def test_candidates_come_from_a_static_beam_batch(translator: Translator) -> None:
    async def body(batcher: ContinuousBatcher) -> list[list[str]]:
        return list(
            await asyncio.gather(
                submit(batcher, translator, TEXTS[:2], beam_size=3, n_best=3),
                submit(batcher, translator, TEXTS[2:3]),
            )
        )

    (ranked, greedy), _, static_calls = run_with(translator, body)
    assert len(ranked) == 6  # three candidates for each of the two sentences, in turn
    assert ranked[::3] == translator.translate(TEXTS[:2], beam_size=3)
    for index, hypotheses in enumerate(
        translator.translate_nbest(TEXTS[:2], n_best=3, beam_size=3)
    ):
        found = translator.decode([hypothesis.tokens for hypothesis in hypotheses])
        assert set(ranked[3 * index : 3 * index + 3]) <= set(found)
    assert greedy == translator.translate(TEXTS[2:3], beam_size=1)  # joined the stream
    assert [(len(sources), beam) for sources, beam in static_calls] == [(2, 3)]


def test_abandoned_requests_leave_the_batch_and_nothing_stays(endless: Translator) -> None:
    async def body(batcher: ContinuousBatcher) -> tuple[list[str], int, int, int]:
        abandoned = [
            asyncio.ensure_future(submit(batcher, endless, [" ".join(["eins"] * 12)]))
            for _ in range(3)
        ]
        await asyncio.sleep(0.05)
        for task in abandoned:
            task.cancel()
        kept = await submit(batcher, endless, ["eins"])
        await asyncio.sleep(0.05)
        return kept, len(batcher.stream), len(batcher._running), batcher.depth

    (kept, rows, running, depth), stats, _ = run_with(endless, body, step_seconds=0.005)
    assert kept == endless.translate(["eins"], beam_size=1)
    assert (rows, running, depth) == (0, 0, 0)
    assert sum(stat.sentences for stat in stats) == 1  # the abandoned ones were never finished


def test_full_queue_raises_and_stop_fails_what_waits(endless: Translator) -> None:
    async def body(batcher: ContinuousBatcher) -> list[Any]:
        long_text = " ".join(["eins"] * 12)
        running = asyncio.ensure_future(submit(batcher, endless, [long_text]))
        await asyncio.sleep(0.02)
        waiting = asyncio.ensure_future(submit(batcher, endless, [long_text]))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFullError):
            await submit(batcher, endless, ["eins"])
        await batcher.stop()
        return await asyncio.gather(running, waiting, return_exceptions=True)

    limits = BatchLimits(max_batch_size=1, max_queue_size=1)
    outcomes, _, _ = run_with(endless, body, limits=limits, step_seconds=0.02)
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert "shutting down" in str(outcomes[1])


def test_a_failing_step_fails_its_requests_and_the_worker_goes_on(translator: Translator) -> None:
    async def body(batcher: ContinuousBatcher) -> tuple[list[Any], list[str]]:
        step = batcher.stream.step
        calls = iter(range(1_000_000))

        def failing_once() -> Any:
            if next(calls) == 0:
                raise RuntimeError("model exploded")
            return step()

        batcher.stream.step = failing_once  # type: ignore[method-assign]
        failed = await asyncio.gather(submit(batcher, translator, ["eins"]), return_exceptions=True)
        return failed, await submit(batcher, translator, ["zwei"])

    (failed, after), _, _ = run_with(translator, body)
    assert isinstance(failed[0], RuntimeError) and "exploded" in str(failed[0])
    assert after == translator.translate(["zwei"], beam_size=1)
