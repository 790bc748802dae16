"""Micro-batching: concurrent requests share one batched `translate` call.

Requests wait in a bounded asyncio queue. One worker task takes the oldest request, waits at
most `max_wait_ms` (counted from its arrival, or from the end of the previous call if that is
later) for others with the same decoding options (beam size, candidates per sentence) until
`max_batch_size` sentences or `max_batch_tokens` source subwords are reached, and runs a single
translate call on one worker thread, off the event loop. It waits only when the previous call
left other requests in the system: a lone client is never delayed, and whatever queued during
a call still goes into the next one. When the last call ended with N requests in the system
(its own and those queued meanwhile), the next batch waits for N until `rejoin_wait_ms` after
it: the clients just answered usually send their next request at once, and without this wait
they trail one batch behind the others (closed-loop clients at concurrency 32 then split into
alternating batches of 26 and 6 instead of one of 32). Each request's future gets its own
translations.
A request that timed out or whose client went away is cancelled: if it has not started it is
dropped from its batch, and a result that arrives late is discarded, so nothing accumulates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Item = TypeVar("Item")
"""What a request carries per sentence: its text, or (as the server sends) its source ids."""
TranslateFn = Callable[[list[Item], int, int], list[str]]
"""`(items, beam_size, n_best) -> translations`: the `n_best` best of each item in turn, in
input order; runs on the worker thread."""
Options = tuple[int, int]
"""(beam_size, n_best) of a request: only requests with equal options share a batch."""


class QueueFullError(Exception):
    """The queue holds `max_queue_size` requests already; the caller should retry later."""


@dataclass
class BatchStats:
    """What one translate call (or one step of continuous batching) did, for metrics."""

    sentences: int
    """Sentences answered."""
    tokens: int
    """Their source subwords."""
    seconds: float
    """Time of the call or step."""
    rows: int
    """Sentences decoded together: the batch size."""


StatsFn = Callable[[BatchStats], None]
"""Receives the stats of every translate call or decoder step, on the worker thread."""


@dataclass
class Job(Generic[Item]):
    """One request: its sentences, their source-token count, options and the future to answer."""

    items: list[Item]
    tokens: int
    options: Options
    future: asyncio.Future[list[str]]
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def answers(self) -> int:
        """Strings this job gets: `n_best` per item."""
        return len(self.items) * self.options[1]


@dataclass(frozen=True)
class BatchLimits:
    """When a batch is flushed: size in sentences and tokens, and the longest wait."""

    max_batch_size: int = 64
    max_batch_tokens: int = 6000
    max_wait_ms: float = 10.0
    rejoin_wait_ms: float = 50.0
    max_queue_size: int = 256


class Batcher(Generic[Item]):
    """A queue and one worker that turns concurrent requests into batched translate calls."""

    def __init__(
        self,
        translate: TranslateFn[Item],
        limits: BatchLimits,
        *,
        on_batch: StatsFn | None = None,
    ) -> None:
        self.translate = translate
        self.limits = limits
        self.on_batch = on_batch
        self._queue: asyncio.Queue[Job[Item]] = asyncio.Queue(maxsize=limits.max_queue_size)
        self._held: dict[Options, deque[Job[Item]]] = {}  # taken from the queue, by options
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="translate")
        self._worker: asyncio.Task[None] | None = None
        self._free_since = time.monotonic()  # when the last translate call ended
        self._expected = 0  # requests in the system when the last call ended (its own included)

    @property
    def depth(self) -> int:
        """Requests accepted but not yet being translated."""
        return self._queue.qsize() + sum(len(jobs) for jobs in self._held.values())

    def start(self) -> None:
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
        _fail(self._drain(), RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def submit(
        self, items: list[Item], *, tokens: int, beam_size: int, n_best: int = 1
    ) -> list[str]:
        """Queue `items` and wait for their translations (raises `QueueFullError`): the
        `n_best` best of each item in turn, best first.

        Cancelling the caller (timeout, disconnect) cancels the job: it is skipped if it has
        not started yet, and a result computed anyway is dropped.
        """
        if self.depth >= self.limits.max_queue_size:
            raise QueueFullError(f"{self.depth} requests are waiting")
        future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Job(items, tokens, (beam_size, n_best), future))
        try:
            return await future
        finally:
            future.cancel()  # no-op when done; otherwise marks the job as abandoned

    async def _run(self) -> None:
        while True:
            try:
                batch = await self._next_batch()
                if batch:
                    await self._translate(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not kill the worker and hang every request
                logger.exception("batch worker error")

    async def _next_batch(self) -> list[Job[Item]]:
        """The oldest waiting group of equal options, filled until full or its wait expires."""
        if not any(self._held.values()):
            self._hold(await self._queue.get())
        group = self._oldest_group()
        if self._expected > _sentences(group):  # other clients are active: wait for company
            # Waits count from the later of the first arrival and the end of the last call.
            start = max(group[0].enqueued, self._free_since)
            deadline = start + self.limits.max_wait_ms / 1000
            await self._fill(group, deadline, self.limits.max_batch_size)
        # Clients answered by the last call usually send their next request at once: until
        # rejoin_wait_ms after that call, wait for them rather than run a small batch ahead.
        target = min(self._expected, self.limits.max_batch_size)
        if _sentences(group) < target:
            await self._fill(group, self._free_since + self.limits.rejoin_wait_ms / 1000, target)
        await self._fill(group, 0.0, self.limits.max_batch_size)  # what waits already
        return self._take(group)

    def _oldest_group(self) -> deque[Job[Item]]:
        options = min((jobs[0].enqueued, key) for key, jobs in self._held.items() if jobs)[1]
        return self._held[options]

    async def _fill(self, group: deque[Job[Item]], deadline: float, target: int) -> None:
        """Move arrivals into their groups until `group` has `target` sentences or is full;
        wait for arrivals until `deadline` (monotonic seconds), after it take only what waits."""
        while not self._full(group) and _sentences(group) < target:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    self._hold(await asyncio.wait_for(self._queue.get(), remaining))
                else:
                    self._hold(self._queue.get_nowait())
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break

    def _hold(self, job: Job[Item]) -> None:
        self._held.setdefault(job.options, deque()).append(job)

    def _full(self, group: deque[Job[Item]]) -> bool:
        tokens = sum(job.tokens for job in group if not job.future.done())
        return (
            _sentences(group) >= self.limits.max_batch_size
            or tokens >= self.limits.max_batch_tokens
        )

    def _take(self, group: deque[Job[Item]]) -> list[Job[Item]]:
        """Pop live jobs from the front of `group` while they fit (always at least one)."""
        batch: list[Job[Item]] = []
        sentences = tokens = 0
        while group:
            job = group[0]
            if job.future.done():  # cancelled while waiting: forget it
                group.popleft()
                continue
            fits = (
                sentences + len(job.items) <= self.limits.max_batch_size
                and tokens + job.tokens <= self.limits.max_batch_tokens
            )
            if batch and not fits:
                break
            batch.append(group.popleft())
            sentences, tokens = sentences + len(job.items), tokens + job.tokens
        return batch

    async def _translate(self, batch: list[Job[Item]]) -> None:
        """One translate call for the whole batch; results are routed back by position."""
        items = [item for job in batch for item in job.items]
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        try:
            outputs = await loop.run_in_executor(
                self._executor, self.translate, items, *batch[0].options
            )
        except asyncio.CancelledError:
            _fail(batch, RuntimeError("the server is shutting down"))
            raise
        except Exception as error:
            _fail(batch, error)
            return
        finally:
            self._free_since = time.monotonic()
            self._expected = len(items) + self.depth
        seconds = time.perf_counter() - started
        tokens = sum(job.tokens for job in batch)
        self._report(BatchStats(len(items), tokens, seconds, len(items)))
        _answer(batch, outputs)

    def _report(self, stats: BatchStats) -> None:
        if self.on_batch is not None:
            self.on_batch(stats)

    def _drain(self) -> list[Job[Item]]:
        jobs = [job for group in self._held.values() for job in group]
        self._held.clear()
        while not self._queue.empty():
            jobs.append(self._queue.get_nowait())
        return jobs


def _sentences(group: deque[Job[Item]]) -> int:
    """Sentences of the jobs in `group` that are still wanted."""
    return sum(len(job.items) for job in group if not job.future.done())


def _answer(batch: list[Job[Item]], outputs: list[str]) -> None:
    """Give each job its slice of `outputs`; abandoned jobs are skipped."""
    position = 0
    for job in batch:
        settle(job.future, outputs[position : position + job.answers])
        position += job.answers


def _fail(jobs: list[Job[Item]], error: BaseException) -> None:
    for job in jobs:
        settle(job.future, error)


def settle(future: asyncio.Future[list[str]], result: list[str] | BaseException) -> None:
    """Give `future` its translations or its error, unless its caller has gone already."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
