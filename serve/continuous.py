"""Continuous batching: greedy requests join the running decoder batch between steps.

The static `Batcher` gathers requests, translates them in one call and answers them together;
requests that arrive during the call wait for the next one, and the call's last steps run on
the few rows whose sentences are longest. `ContinuousBatcher` runs one decoding loop on a
worker thread over a `GreedyStream`: before a step it admits what has queued (one encoder call
for all newcomers), after it answers every request whose sentences have all ended. The batch
stays full under load, and a short sentence is not held back by a long one.

Requests with a beam wider than 1 are translated between two steps as a static batch of
every waiting request with that beam, through the same worker thread, so the model is only
ever used by one thread. A request that timed out or whose client went away leaves the batch
at the next step, and its result is never computed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from seq2seq import Translator
from seq2seq.continuous import Finished, GreedyStream
from serve.batching import BatchLimits, BatchStats, QueueFullError, StatsFn, TranslateFn

logger = logging.getLogger(__name__)

Key = tuple[int, int]
"""(job number, sentence index) of one row of the stream."""


@dataclass
class Job:
    """One request: source ids per sentence, options, and where its answer goes."""

    items: list[list[int]]
    tokens: int
    beam_size: int
    future: asyncio.Future[list[str]]
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)
    outputs: dict[int, list[int]] = field(default_factory=dict)

    def answer(self, texts: list[str] | BaseException) -> None:
        """Resolve the future from any thread (ignored when the caller has gone)."""
        self.loop.call_soon_threadsafe(_settle, self.future, texts)


class ContinuousBatcher:
    """A queue and one decoding loop that requests join and leave between steps."""

    def __init__(
        self,
        translator: Translator,
        limits: BatchLimits,
        *,
        translate: TranslateFn[list[int]],
        on_batch: StatsFn | None = None,
        max_length: int = 256,
    ) -> None:
        """`translate` runs the static batches of wider beams; `limits.max_batch_size` caps
        the rows decoded together, `max_wait_ms` how long newcomers gather before joining."""
        self.stream: GreedyStream[Key] = translator.greedy_stream(max_length=max_length)
        self.decode, self.translate = translator.decode, translate
        self.limits, self.on_batch = limits, on_batch
        self._pending: deque[Job] = deque()
        self._running: dict[int, Job] = {}
        self._numbers = iter(range(1 << 62))
        self._ready = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def depth(self) -> int:
        """Requests accepted but not yet being translated."""
        return len(self._pending)

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._work, name="translate", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        """Stop the worker and fail every request it has not answered."""
        with self._ready:
            self._stopping = True
            self._ready.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        error = RuntimeError("the server is shutting down")
        for job in [*self._pending, *self._running.values()]:
            job.answer(error)
        self._pending.clear()
        self._running.clear()
        self.stream.clear()

    async def submit(self, items: list[list[int]], *, tokens: int, beam_size: int) -> list[str]:
        """Queue `items` and wait for their translations (raises `QueueFullError`)."""
        loop = asyncio.get_running_loop()
        job = Job(items, tokens, beam_size, loop.create_future(), loop)
        with self._ready:
            if len(self._pending) >= self.limits.max_queue_size:
                raise QueueFullError(f"{len(self._pending)} requests are waiting")
            self._pending.append(job)
            self._ready.notify()
        try:
            return await job.future
        finally:
            job.future.cancel()  # no-op when answered; otherwise the worker drops the job

    def _work(self) -> None:
        while (work := self._next_work()) is not None:
            greedy, beam = work
            try:
                if beam:
                    self._translate_static(beam)
                self._admit(greedy)
                self._step()
            except Exception as error:  # a bug must not kill the worker and hang every request
                logger.exception("batch worker error")
                self._fail_running(error)

    def _next_work(self) -> tuple[list[Job], list[Job]] | None:
        """Jobs to admit and a static beam batch to run; None once stopping."""
        with self._ready:
            while not self._stopping and not self._pending and not len(self.stream):
                self._ready.wait()
            if self._stopping:
                return None
            self._drop_abandoned()
            if self._pending and self._pending[0].beam_size > 1:
                return [], self._take_beam_batch()
            return self._take_newcomers(), []

    def _take_newcomers(self) -> list[Job]:
        """Greedy jobs from the front of the queue that fit in the batch, once they are worth
        an encoder call (one call for four sentences costs far less than four calls): when the
        batch is empty, when they are a quarter as many as its rows, or when the oldest has
        waited `max_wait_ms`."""
        rows, free = len(self.stream), self.limits.max_batch_size - len(self.stream)
        waiting = [job for job in self._pending if job.beam_size == 1]
        sentences = sum(len(job.items) for job in waiting)
        oldest = waiting[0].enqueued if waiting else time.monotonic()
        waited = time.monotonic() - oldest >= self.limits.max_wait_ms / 1000
        if rows and not waited and sentences < max(1, rows // 4):
            return []
        jobs: list[Job] = []
        while self._pending and self._pending[0].beam_size == 1:
            size = len(self._pending[0].items)
            if (rows or jobs) and size > free:
                break
            jobs.append(self._pending.popleft())
            free -= size
        return jobs

    def _take_beam_batch(self) -> list[Job]:
        """Every waiting job with the front job's beam, within the batch limits."""
        beam_size, sentences, tokens = self._pending[0].beam_size, 0, 0
        jobs: list[Job] = []
        for job in list(self._pending):
            fits = (
                sentences + len(job.items) <= self.limits.max_batch_size
                and tokens + job.tokens <= self.limits.max_batch_tokens
            )
            if job.beam_size != beam_size or (jobs and not fits):
                continue
            self._pending.remove(job)
            jobs.append(job)
            sentences, tokens = sentences + len(job.items), tokens + job.tokens
        return jobs

    def _drop_abandoned(self) -> None:
        """Forget jobs whose caller has gone: from the queue, and their rows from the batch."""
        self._pending = deque(job for job in self._pending if not job.future.done())
        gone = [number for number, job in self._running.items() if job.future.done()]
        if gone:
            self.stream.remove({key for key in self.stream.keys if key[0] in gone})
            for number in gone:
                del self._running[number]

    def _translate_static(self, jobs: list[Job]) -> None:
        items = [ids for job in jobs for ids in job.items]
        started = time.perf_counter()
        try:
            outputs = self.translate(items, jobs[0].beam_size)
        except Exception as error:
            logger.exception("beam batch failed")
            for job in jobs:
                job.answer(error)
            return
        seconds = time.perf_counter() - started
        tokens = sum(job.tokens for job in jobs)
        self._report(BatchStats(len(items), tokens, seconds, len(items)))
        position = 0
        for job in jobs:
            job.answer(outputs[position : position + len(job.items)])
            position += len(job.items)

    def _admit(self, jobs: list[Job]) -> None:
        keys: list[Key] = []
        sources: list[list[int]] = []
        for job in jobs:
            number = next(self._numbers)
            self._running[number] = job
            keys.extend((number, index) for index in range(len(job.items)))
            sources.extend(job.items)
        if keys:
            self._collect(self.stream.admit(keys, sources))

    def _step(self) -> None:
        rows, started = len(self.stream), time.perf_counter()
        if rows:
            sentences, tokens = self._collect(self.stream.step())
            self._report(BatchStats(sentences, tokens, time.perf_counter() - started, rows))

    def _collect(self, finished: list[Finished[Key]]) -> tuple[int, int]:
        """File each finished sentence with its job; answer complete jobs. Returns the
        sentences finished and their source tokens."""
        sentences = tokens = 0
        for item in finished:
            number, index = item.key
            job = self._running.get(number)
            if job is None:
                continue
            job.outputs[index] = item.tokens
            if len(job.outputs) == len(job.items):
                del self._running[number]
                job.answer(self.decode([job.outputs[i] for i in range(len(job.items))]))
                sentences, tokens = sentences + len(job.items), tokens + job.tokens
        return sentences, tokens

    def _fail_running(self, error: BaseException) -> None:
        for job in self._running.values():
            job.answer(error)
        self._running.clear()
        self.stream.clear()

    def _report(self, stats: BatchStats) -> None:
        if self.on_batch is not None:
            self.on_batch(stats)


def _settle(future: asyncio.Future[list[str]], result: list[str] | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
