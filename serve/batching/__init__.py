"""Running a model's translations: the `Batcher` protocol and what every batcher shares.

A batcher takes jobs, each the source ids of one request's sentences with its `SearchOptions`,
and answers every sentence with its translations, best first. Concurrent jobs with equal
options share batches; a batch never holds more than `BatchLimits` allows, so a job larger
than that is decoded in several batches, between which other jobs get their turn. A job whose
caller has gone (timeout, disconnect) stops costing decoder time at the next decoder step.

- `ThreadBatcher` (`serve.batching.thread`): batches on a worker thread of this process.
- `ProcessBatcher` (`serve.batching.process`): a `ThreadBatcher` in a child process that holds
  the model; the server sends it ids and gets texts back.
- `BatcherPool` (`serve.batching.pool`): several batchers behind one, the least busy first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from seq2seq import SearchOptions
from seq2seq.search import StopFn

if TYPE_CHECKING:
    from serve.settings import Settings

Ranked = list[list[str]]
"""Per sentence, its translations best first."""
TranslateFn = Callable[[list[list[int]], SearchOptions, StopFn], Ranked]
"""`(sources, options, stop) -> ranked`: one batch, on a worker thread; `stop()` says every
caller has gone."""


class QueueFullError(Exception):
    """The batcher holds `max_queue_size` waiting requests already; retry later."""


class BatcherUnavailable(RuntimeError):
    """The batcher cannot take requests now (its process is starting again); retry later."""


@dataclass
class BatchStats:
    """What one batch did, for metrics."""

    sentences: int
    """Sentences answered."""
    tokens: int
    """Their source subwords."""
    seconds: float
    """Time of the batch."""
    rows: int
    """Sentences decoded together: the batch size."""


StatsFn = Callable[[BatchStats], None]
"""Receives the stats of every batch, on the worker thread."""


ONE_THREAD_ROWS = {"int8": 40}
"""The largest batch (sentences x beam) that decodes on one thread, where the precision's
differs from 32. Measured in back-to-back servers on 2 cores: int8 beam 5 over 8 sentences
on one thread served 1.06x to 2.0x the requests/s of two in five pairs; fp32 lost at 40
rows as often as it gained."""


@dataclass(frozen=True)
class BatchLimits:
    """How big a batch may be, how long one waits to fill, how many requests may wait, and
    which batches are small enough for one thread."""

    max_batch_size: int = 64
    max_batch_tokens: int = 6000
    max_wait_ms: float = 10.0
    rejoin_wait_ms: float = 50.0
    max_queue_size: int = 256
    one_thread_rows: int = 32
    """Batches of at most this many rows (sentences x beam) decode on one torch thread."""

    @classmethod
    def from_settings(cls, settings: Settings) -> BatchLimits:
        """The limits a server is configured with."""
        return cls(
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_wait_ms=settings.max_wait_ms,
            rejoin_wait_ms=settings.rejoin_wait_ms,
            max_queue_size=settings.max_queue_size,
            one_thread_rows=(
                settings.one_thread_rows
                if settings.one_thread_rows is not None
                else ONE_THREAD_ROWS.get(settings.precision, cls.one_thread_rows)
            ),
        )

    def fits(self, sentences: int, tokens: int) -> bool:
        """Whether a batch of `sentences` sentences and `tokens` source subwords is allowed."""
        return sentences <= self.max_batch_size and tokens <= self.max_batch_tokens


@dataclass(eq=False)
class Job:
    """One request: its sentences, options, the answers so far and the future to answer."""

    sources: list[list[int]]
    options: SearchOptions
    future: asyncio.Future[Ranked]
    enqueued: float = field(default_factory=time.monotonic)
    taken: int = 0
    """Sentences already given to a batch (they go in order)."""
    results: dict[int, list[str]] = field(default_factory=dict)

    @property
    def abandoned(self) -> bool:
        """The caller stopped waiting (timeout, disconnect, shutdown) or was answered."""
        return self.future.done()

    @property
    def waiting(self) -> int:
        """Sentences not given to a batch yet."""
        return len(self.sources) - self.taken

    def take(self, limits: BatchLimits, sentences: int, tokens: int) -> range:
        """The next sentences that fit a batch holding `sentences` and `tokens` already (at
        least one when the batch is empty); marks them taken."""
        end = self.taken
        while end < len(self.sources):
            more = len(self.sources[end])
            if not limits.fits(sentences + 1, tokens + more) and (sentences or end > self.taken):
                break
            sentences, tokens, end = sentences + 1, tokens + more, end + 1
        taken, self.taken = range(self.taken, end), end
        return taken

    def answer(self, sentences: range, ranked: Ranked) -> bool:
        """File the translations of `sentences`; True once the job is complete (and answered)."""
        self.results.update(zip(sentences, ranked, strict=True))
        if len(self.results) < len(self.sources):
            return False
        settle(self.future, [self.results[number] for number in range(len(self.sources))])
        return True


class Batcher(Protocol):
    """What the server needs of a batcher, whichever it is."""

    async def start(self) -> None:
        """Get ready to take jobs (load the model, start threads or processes)."""

    async def submit(self, sources: list[list[int]], options: SearchOptions) -> Ranked:
        """Translate `sources`; raises `QueueFullError` or `BatcherUnavailable`. Cancelling the
        caller cancels the job."""
        ...

    async def stop(self) -> None:
        """Fail whatever waits and release threads, processes and the model."""

    @property
    def depth(self) -> int:
        """Requests accepted but not started yet."""
        ...

    @property
    def alive(self) -> bool:
        """Takes jobs now."""
        ...


def settle(future: asyncio.Future[Ranked], result: Ranked | BaseException) -> None:
    """Give `future` its translations or its error, unless its caller has gone already."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
