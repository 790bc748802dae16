"""Continuous batching: greedy requests join the running decoder batch between steps.

The static `Batcher` gathers requests, translates them in one call and answers them together;
requests that arrive during the call wait for the next one, and the call's last steps run on
the few rows whose sentences are longest. `ContinuousBatcher` keeps one `GreedyStream` going
instead, on two threads: the encoder thread encodes whatever greedy requests are waiting (in
one call, while the batch has room), and the decoder thread, between two steps, joins what
has been encoded and answers every request whose sentences have all ended. The batch stays
full under load, a short sentence is not held back by a long one, and encoding newcomers
never stalls the decoder: on a CPU the two threads run on two cores.

Requests with a beam wider than 1 (and those asking for several candidates, which need one)
are translated as one static batch per set of options on the decoder thread, between two
steps. A request that timed out or whose client went away leaves
the batch at the next step, and its result is never computed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from seq2seq import Translator
from seq2seq.continuous import Encoded, Finished, GreedyStream
from serve.batching import (
    BatchLimits,
    BatchStats,
    Options,
    QueueFullError,
    StatsFn,
    TranslateFn,
    settle,
)

logger = logging.getLogger(__name__)

Key = tuple[int, int]
"""(job number, sentence index) of one row of the stream."""
Work = TypeVar("Work")


@dataclass
class Job:
    """One request: source ids per sentence, options, and where its answer goes."""

    items: list[list[int]]
    tokens: int
    options: Options  # (beam_size, n_best)
    future: asyncio.Future[list[str]]
    loop: asyncio.AbstractEventLoop
    number: int = -1
    outputs: dict[int, list[int]] = field(default_factory=dict)

    @property
    def answers(self) -> int:
        """Strings this job gets: `n_best` per item."""
        return len(self.items) * self.options[1]

    def answer(self, result: list[str] | BaseException) -> None:
        """Resolve the future from any thread (ignored when the caller has gone)."""
        self.loop.call_soon_threadsafe(settle, self.future, result)

    @property
    def abandoned(self) -> bool:
        """The caller stopped waiting (timeout, disconnect, shutdown)."""
        return self.future.done()


class ContinuousBatcher:
    """A queue, an encoder thread and a decoding loop that requests join between steps."""

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
        the sentences being decoded or waiting to join, `max_queue_size` the waiting requests."""
        self.stream: GreedyStream[Key] = translator.greedy_stream(max_length=max_length)
        self.decode, self.translate = translator.decode, translate
        self.limits, self.on_batch = limits, on_batch
        self._greedy: deque[Job] = deque()  # waiting for the encoder thread
        self._beam: deque[Job] = deque()  # waiting for the decoder thread
        self._encoded: deque[tuple[list[Job], Encoded[Key]]] = deque()  # waiting to join
        self._running: dict[int, Job] = {}  # joined, by number; the decoder thread's own
        self._rows = 0  # sentences being decoded, encoded or encoding
        self._numbers = itertools.count()
        self._ready = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []

    @property
    def depth(self) -> int:
        """Requests accepted but not yet being translated."""
        return len(self._greedy) + len(self._beam)

    def start(self) -> None:
        """Start the encoder and decoder threads."""
        if not self._threads:
            self._stopping = False
            for name, target in (("encode", self._encode_loop), ("translate", self._decode_loop)):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)

    async def stop(self) -> None:
        """Stop both threads and fail every request not answered yet."""
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        self._threads.clear()
        error = RuntimeError("the server is shutting down")
        encoded = [job for jobs, _ in self._encoded for job in jobs]
        for job in [*self._greedy, *self._beam, *encoded, *self._running.values()]:
            job.answer(error)
        for queue in (self._greedy, self._beam, self._encoded, self._running):
            queue.clear()
        self.stream.clear()

    async def submit(
        self, items: list[list[int]], *, tokens: int, beam_size: int, n_best: int = 1
    ) -> list[str]:
        """Queue `items` and wait for their translations (raises `QueueFullError`): the
        `n_best` best of each item in turn, best first."""
        loop = asyncio.get_running_loop()
        job = Job(items, tokens, (beam_size, n_best), loop.create_future(), loop)
        with self._ready:
            if self.depth >= self.limits.max_queue_size:
                raise QueueFullError(f"{self.depth} requests are waiting")
            (self._greedy if job.options == (1, 1) else self._beam).append(job)
            self._ready.notify_all()
        try:
            return await job.future
        finally:
            job.future.cancel()  # no-op when answered; otherwise the threads drop the job

    # --- encoder thread ------------------------------------------------------------------

    def _encode_loop(self) -> None:
        while (jobs := self._wait(self._take_greedy)) is not None:
            keys = [(job.number, index) for job in jobs for index in range(len(job.items))]
            try:
                encoded = self.stream.encode(keys, [ids for job in jobs for ids in job.items])
            except Exception as error:  # fail these requests; the thread goes on
                logger.exception("encoder error")
                self._release(jobs, error)
                continue
            with self._ready:
                self._encoded.append((jobs, encoded))
                self._ready.notify_all()

    def _take_greedy(self) -> list[Job] | None:
        """Waiting greedy jobs, oldest first, while the batch has room (always one when it is
        empty); None when there is nothing to take."""
        self._greedy = deque(job for job in self._greedy if not job.abandoned)
        jobs: list[Job] = []
        while self._greedy:
            size = len(self._greedy[0].items)
            if self._rows and self._rows + size > self.limits.max_batch_size:
                break
            job = self._greedy.popleft()
            job.number = next(self._numbers)
            jobs.append(job)
            self._rows += size
        return jobs or None

    def _release(self, jobs: list[Job], error: BaseException) -> None:
        with self._ready:
            self._rows -= sum(len(job.items) for job in jobs)
            self._ready.notify_all()
        for job in jobs:
            job.answer(error)

    # --- decoder thread ------------------------------------------------------------------

    def _decode_loop(self) -> None:
        while (work := self._wait(self._take_decoder_work)) is not None:
            joins, beam = work
            try:
                if beam:
                    self._translate_static(beam)
                for jobs, encoded in joins:
                    self._join(jobs, encoded)
                self._step()
            except Exception as error:  # a bug must not kill the thread and hang every request
                logger.exception("batch worker error")
                self._fail_running(error)

    def _take_decoder_work(self) -> tuple[list[tuple[list[Job], Encoded[Key]]], list[Job]] | None:
        """Encoded groups to join and a static beam batch; None when there is nothing to do."""
        self._drop_abandoned()
        joins = list(self._encoded)
        self._encoded.clear()
        beam = self._take_beam_batch()
        return (joins, beam) if joins or beam or len(self.stream) else None

    def _take_beam_batch(self) -> list[Job]:
        """Every waiting job with the oldest one's options, within the batch limits."""
        if not self._beam:  # the usual case, checked before every decoder step
            return []
        self._beam = deque(job for job in self._beam if not job.abandoned)
        if not self._beam:
            return []
        options, sentences, tokens = self._beam[0].options, 0, 0
        jobs: list[Job] = []
        for job in list(self._beam):
            fits = (
                sentences + len(job.items) <= self.limits.max_batch_size
                and tokens + job.tokens <= self.limits.max_batch_tokens
            )
            if job.options == options and (fits or not jobs):
                self._beam.remove(job)
                jobs.append(job)
                sentences, tokens = sentences + len(job.items), tokens + job.tokens
        return jobs

    def _drop_abandoned(self) -> None:
        """Take the rows of requests whose caller has gone out of the batch."""
        gone = {number for number, job in self._running.items() if job.abandoned}
        if gone:
            self.stream.remove({key for key in self.stream.keys if key[0] in gone})
            for number in gone:
                self._rows -= len(self._running.pop(number).items)

    def _translate_static(self, jobs: list[Job]) -> None:
        items = [ids for job in jobs for ids in job.items]
        started = time.perf_counter()
        try:
            outputs = self.translate(items, *jobs[0].options)
        except Exception as error:
            logger.exception("beam batch failed")
            for job in jobs:
                job.answer(error)
            return
        tokens = sum(job.tokens for job in jobs)
        self._report(BatchStats(len(items), tokens, time.perf_counter() - started, len(items)))
        position = 0
        for job in jobs:
            job.answer(outputs[position : position + job.answers])
            position += job.answers

    def _join(self, jobs: list[Job], encoded: Encoded[Key]) -> None:
        for job in jobs:
            self._running[job.number] = job
        self._collect(self.stream.join(encoded))

    def _step(self) -> None:
        rows, started = len(self.stream), time.perf_counter()
        if rows:
            sentences, tokens = self._collect(self.stream.step())
            self._report(BatchStats(sentences, tokens, time.perf_counter() - started, rows))

    def _collect(self, finished: list[Finished[Key]]) -> tuple[int, int]:
        """File each finished sentence with its job; answer complete jobs. Returns the
        sentences answered and their source tokens."""
        done: list[Job] = []
        for item in finished:
            number, index = item.key
            job = self._running.get(number)
            if job is not None:
                job.outputs[index] = item.tokens
                if len(job.outputs) == len(job.items):
                    done.append(self._running.pop(number))
        if done:
            with self._ready:  # room for the encoder thread
                self._rows -= sum(len(job.items) for job in done)
                self._ready.notify_all()
        for job in done:
            job.answer(self.decode([job.outputs[i] for i in range(len(job.items))]))
        return sum(len(job.items) for job in done), sum(job.tokens for job in done)

    def _fail_running(self, error: BaseException) -> None:
        with self._ready:
            self._rows -= sum(len(job.items) for job in self._running.values())
            self._ready.notify_all()
        for job in self._running.values():
            job.answer(error)
        self._running.clear()
        self.stream.clear()

    # --- both ----------------------------------------------------------------------------

    def _wait(self, take: Callable[[], Work | None]) -> Work | None:
        """Under the lock, wait until `take()` gives something; None once stopping."""
        with self._ready:
            while not self._stopping:
                if (work := take()) is not None:
                    return work
                self._ready.wait()
            return None

    def _report(self, stats: BatchStats) -> None:
        if self.on_batch is not None:
            self.on_batch(stats)
