"""`ThreadBatcher`: concurrent requests share batched translate calls on one worker thread.

Requests wait in arrival order, up to `max_queue_size`. The worker task takes the oldest
request, waits for others with the same options, and gives the sentences of as many as fit
`BatchLimits` to one translate call on the worker thread, off the event loop. It waits only
while the previous call left more requests in the system than are waiting now, and only until
that many are: a lone client is never delayed, and a batch never waits for requests nobody
is known to send. When the last call ended with N requests in the system, the next batch waits
for N until `max_wait_ms` after its first request arrived or `rejoin_wait_ms` after that call,
whichever is later: the clients just answered usually send their next request at once, and
without this wait they trail one batch behind the others (closed-loop clients at concurrency
32 then split into alternating batches of 26 and 6 instead of one of 32).

A request larger than a batch is decoded a batch at a time and goes to the back of the line
after each, so one request cannot hold the decoder while others wait. A request whose caller
has gone is dropped before its next batch, and a batch whose callers have all gone stops at
the next decoder step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from seq2seq import SearchOptions
from serve.batching import (
    BatchLimits,
    BatchStats,
    Job,
    QueueFullError,
    Ranked,
    StatsFn,
    TranslateFn,
    settle,
)

logger = logging.getLogger(__name__)
SHUTDOWN = RuntimeError("the server is shutting down")
Piece = tuple[Job, range]
"""Sentences of one job in a batch."""


class ThreadBatcher:
    """A line of waiting jobs and one worker that turns them into batched translate calls."""

    def __init__(
        self, translate: TranslateFn, limits: BatchLimits, *, on_batch: StatsFn | None = None
    ) -> None:
        self.translate, self.limits, self.on_batch = translate, limits, on_batch
        self._waiting: list[Job] = []  # jobs with sentences not in a batch yet, oldest first
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="translate")
        self._worker: asyncio.Task[None] | None = None
        self._free_since = time.monotonic()  # when the last translate call ended
        self._expected = 0  # requests in the system when the last call ended (its own included)

    @property
    def depth(self) -> int:
        """Requests accepted and not answered that have sentences waiting for a batch."""
        return sum(1 for job in self._waiting if not job.abandoned)

    @property
    def alive(self) -> bool:
        """The worker runs."""
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        """Start the worker task on the running event loop."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Stop the worker, fail what is still waiting, and release the thread."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for job in self._waiting:
            settle(job.future, SHUTDOWN)
        self._waiting.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def submit(self, sources: list[list[int]], options: SearchOptions) -> Ranked:
        """Queue `sources` and wait for their translations (raises `QueueFullError`).
        Cancelling the caller drops the job before its next batch."""
        if not sources:
            return []
        if self.depth >= self.limits.max_queue_size:
            raise QueueFullError(f"{self.depth} requests are waiting")
        job = Job(sources, options, asyncio.get_running_loop().create_future())
        self._waiting.append(job)
        self._arrived.set()
        try:
            return await job.future
        finally:
            job.future.cancel()  # no-op when answered; otherwise marks the job as abandoned

    async def _run(self) -> None:
        while True:
            try:
                await self._gather()
                if batch := self._take():
                    await self._translate(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not kill the worker and hang every request
                logger.exception("batch worker error")

    async def _gather(self) -> None:
        """Wait for a job, then for the other clients active in the last call (see the module)."""
        while not self._group():
            self._arrived.clear()
            await self._arrived.wait()
        start = max(self._group()[0].enqueued, self._free_since)
        deadline = max(
            start + self.limits.max_wait_ms / 1000,
            self._free_since + self.limits.rejoin_wait_ms / 1000,
        )
        await self._fill(deadline, min(self._expected, self.limits.max_batch_size))

    async def _fill(self, deadline: float, target: int) -> None:
        """Wait for arrivals until the next batch has `target` sentences or is full, or until
        `deadline` (monotonic seconds)."""
        while self._sentences() < target and not self._full():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def _group(self) -> list[Job]:
        """Live waiting jobs with the oldest one's options, oldest first (forgets the rest)."""
        self._waiting = [job for job in self._waiting if not job.abandoned]
        options = self._waiting[0].options if self._waiting else None
        return [job for job in self._waiting if job.options == options]

    def _sentences(self) -> int:
        return sum(job.waiting for job in self._group())

    def _full(self) -> bool:
        tokens = sum(len(ids) for job in self._group() for ids in job.sources[job.taken :])
        return not self.limits.fits(self._sentences(), tokens)

    def _take(self) -> list[Piece]:
        """The next batch: sentences of the oldest jobs with equal options, while they fit.
        They leave the line; those with sentences left join its end after the batch."""
        batch: list[Piece] = []
        sentences = tokens = 0
        for job in self._group():
            more = len(job.sources[job.taken])
            if batch and not self.limits.fits(sentences + 1, tokens + more):
                break
            taken = job.take(self.limits, sentences, tokens)
            batch.append((job, taken))
            sentences += len(taken)
            tokens += sum(len(job.sources[number]) for number in taken)
        for job, _ in batch:
            self._waiting.remove(job)
        return batch

    async def _translate(self, batch: list[Piece]) -> None:
        """One translate call for the whole batch; results are routed back by position."""
        sources = [job.sources[number] for job, taken in batch for number in taken]
        options = batch[0][0].options
        started = time.perf_counter()
        loop = asyncio.get_running_loop()

        def gone() -> bool:
            return all(job.abandoned for job, _ in batch)

        try:
            ranked = await loop.run_in_executor(
                self._executor, self.translate, sources, options, gone
            )
        except (Exception, asyncio.CancelledError) as error:  # cancelled: the server stops
            for job, _ in batch:
                settle(job.future, error if isinstance(error, Exception) else SHUTDOWN)
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        finally:
            self._waiting += [job for job, _ in batch if job.waiting and not job.abandoned]
            self._free_since = time.monotonic()
            self._expected = len(sources) + self._sentences()
        self._report(batch, len(sources), time.perf_counter() - started)
        position = 0
        for job, taken in batch:
            job.answer(taken, ranked[position : position + len(taken)])
            position += len(taken)

    def _report(self, batch: list[Piece], sentences: int, seconds: float) -> None:
        if self.on_batch is not None:
            tokens = sum(len(job.sources[number]) for job, taken in batch for number in taken)
            self.on_batch(BatchStats(sentences, tokens, seconds, sentences))
