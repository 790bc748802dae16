"""`ProcessBatcher`: a `ThreadBatcher` in a spawned child process that holds the model.

The server process keeps the tokenizers: it sends each job over a pipe as source ids and
options, and gets the texts back. It parses, validates and answers HTTP on one core while the
child decodes on another, instead of taking turns with it for one interpreter lock; and a
crash in the decoder (out of memory, a killed process) cannot take the server with it. A job
the server gives up on (timeout, disconnect) is cancelled in the child.

A child that dies fails the jobs it held with `BatcherUnavailable` and is replaced at once;
jobs that arrive meanwhile get the same error. A child whose parent dies sees the pipe close
and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from seq2seq import SearchOptions
from serve.batching import (
    BatcherUnavailable,
    BatchLimits,
    QueueFullError,
    Ranked,
    StatsFn,
    settle,
)
from serve.batching.loading import Loading, ModelCall
from serve.batching.thread import ThreadBatcher

logger = logging.getLogger(__name__)
SendFn = Callable[[tuple[Any, ...]], None]
START_TIMEOUT_S = 300.0
"""How long a child may take to import torch and load the model."""


class ProcessBatcher:
    """The batcher of a spawned child process, seen through the `Batcher` protocol."""

    def __init__(
        self, loading: Loading, limits: BatchLimits, *, on_batch: StatsFn | None = None
    ) -> None:
        self.loading, self.limits, self.on_batch = loading, limits, on_batch
        self.info: dict[str, Any] = {}
        """The child's `Translator.info()` (device and precision as it decodes)."""
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[Ranked]] = {}
        self._numbers = itertools.count()
        self._depth = 0  # the child's batcher depth, as of its last report
        self._receiver: threading.Thread | None = None
        self._closing = False

    @property
    def alive(self) -> bool:
        """A child runs and takes jobs."""
        return self._conn is not None and self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        """The child's process id, while one runs."""
        return self._process.pid if self.alive and self._process is not None else None

    @property
    def depth(self) -> int:
        """Jobs the child holds but does not decode yet, as of its last report."""
        return self._depth

    async def start(self) -> None:
        """Spawn the child, wait until its model is loaded (raises `BatcherUnavailable` with
        the reason), then route its answers to the running event loop."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._launch)
        self._receiver = threading.Thread(target=self._receive, name="receiver", daemon=True)
        self._receiver.start()

    async def stop(self) -> None:
        """Let the child fail what it holds and exit, then fail whatever is left here."""
        self._closing = True
        self._tell_child_to_exit()
        if self._receiver is not None:
            await asyncio.to_thread(self._receiver.join, 30)
        if self._process is not None:
            await asyncio.to_thread(self._process.join, 10)
            if self._process.is_alive():
                self._process.kill()
        self._fail_pending(RuntimeError("the server is shutting down"))

    async def submit(self, sources: list[list[int]], options: SearchOptions) -> Ranked:
        """Send `sources` to the child and wait for their translations; cancelling the caller
        cancels the job in the child."""
        if not sources:
            return []
        assert self._loop is not None, "start() first"
        number = next(self._numbers)
        future: asyncio.Future[Ranked] = self._loop.create_future()
        self._pending[number] = future
        try:
            self._send(("job", number, sources, options))
            return await future
        finally:
            del self._pending[number]
            if future.cancelled():  # the caller gave up: so does the child
                with contextlib.suppress(BatcherUnavailable):
                    self._send(("cancel", number))

    def _launch(self) -> None:
        """Spawn the child and wait until its model is loaded. Blocks."""
        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        parent, child = context.Pipe()
        process = context.Process(
            target=child_main, args=(child, self.loading, self.limits), daemon=True
        )
        process.start()
        child.close()
        payload: Any
        try:
            kind, payload = parent.recv() if parent.poll(START_TIMEOUT_S) else ("slow", None)
        except EOFError:
            kind, payload = "error", "it exited while loading"
        if kind != "ready":
            parent.close()
            process.kill()
            process.join(5)
            reason = payload if kind == "error" else f"no model within {START_TIMEOUT_S:.0f} s"
            raise BatcherUnavailable(f"the inference process could not start: {reason}")
        self.info, self._process, self._conn = payload, process, parent

    def _tell_child_to_exit(self) -> None:
        with self._send_lock, contextlib.suppress(OSError):
            if self._conn is not None:
                self._conn.send(None)

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            if not self.alive or self._conn is None:
                raise BatcherUnavailable("the inference process is starting again")
            try:
                self._conn.send(message)
            except OSError as error:
                raise BatcherUnavailable("the inference process stopped") from error

    def _receive(self) -> None:
        """Receiver thread: route answers and stats; replace a child that dies."""
        while True:
            conn = self._conn
            try:
                message = conn.recv() if conn is not None else None
            except (EOFError, OSError):
                message = None
            if message is not None:
                self._route(message)
                continue
            self._forget_child()
            if self._closing:
                return
            self._relaunch()

    def _route(self, message: tuple[Any, ...]) -> None:
        kind, *rest = message
        if kind == "stats":
            stats, self._depth = rest
            if self.on_batch is not None:
                self.on_batch(stats)
            return
        number, payload = rest
        result: Ranked | BaseException = payload
        if kind == "full":
            result = QueueFullError(payload)
        elif kind == "failed":
            result = RuntimeError(f"translation failed in the inference process: {payload}")
        self._settle(number, result)

    def _settle(self, number: int, result: Ranked | BaseException) -> None:
        assert self._loop is not None
        future = self._pending.get(number)
        if future is not None:
            self._loop.call_soon_threadsafe(settle, future, result)

    def _forget_child(self) -> None:
        with self._send_lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(5)
        if not self._closing:
            self._fail_pending(
                BatcherUnavailable("the inference process stopped; a new one is starting")
            )

    def _relaunch(self) -> None:
        """Start a new child, trying again (ever more slowly) until one starts or we close."""
        logger.error("the inference process of %s stopped; starting a new one", self.loading.path)
        for attempt in itertools.count():
            if self._closing:
                return
            try:
                self._launch()
            except BatcherUnavailable as error:  # the model loaded before: try again
                logger.error("%s (attempt %d)", error, attempt + 1)
                time.sleep(min(2.0**attempt, 60.0))
                continue
            if self._closing:  # stop() came while it loaded and found no child to tell
                self._tell_child_to_exit()
            return

    def _fail_pending(self, error: BaseException) -> None:
        for number in list(self._pending):
            self._settle(number, error)


def child_main(conn: Connection, loading: Loading, limits: BatchLimits) -> None:
    """The child: load the model, tell the parent, then serve its messages until `None`."""
    # Ctrl-C and a group-wide SIGTERM reach us too: the parent stops us once it has drained.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    try:
        translator = loading.load()
    except Exception as error:  # the parent reports it; a traceback here would say no more
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    send = partial(_send_locked, conn, threading.Lock())
    batcher = ThreadBatcher(ModelCall(translator, limits, loading.torch_threads), limits)
    batcher.on_batch = lambda stats: send(("stats", stats, batcher.depth))
    asyncio.run(serve_pipe(conn, batcher, send, translator.info()))


async def serve_pipe(
    conn: Connection, batcher: ThreadBatcher, send: SendFn, info: dict[str, Any]
) -> None:
    """Run `batcher` for the jobs that come over `conn`, until `None` comes or the other end
    closes; `send` answers (thread-safe)."""
    loop = asyncio.get_running_loop()
    await batcher.start()
    inbox: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()
    threading.Thread(target=_read, args=(conn, loop, inbox), daemon=True).start()
    send(("ready", info))
    jobs: dict[int, asyncio.Task[None]] = {}
    while (message := await inbox.get()) is not None:
        if message[0] == "job":
            task = jobs[message[1]] = loop.create_task(_job(batcher, send, *message[1:]))
            task.add_done_callback(partial(_forget, jobs, message[1]))
        elif message[1] in jobs:  # ("cancel", number)
            jobs[message[1]].cancel()
    await batcher.stop()  # fails what it holds; the jobs send those errors
    await asyncio.gather(*jobs.values(), return_exceptions=True)


def _forget(jobs: dict[int, asyncio.Task[None]], number: int, _: object) -> None:
    jobs.pop(number, None)


def _send_locked(conn: Connection, lock: threading.Lock, message: tuple[Any, ...]) -> None:
    with lock, contextlib.suppress(OSError):
        conn.send(message)


def _read(
    conn: Connection, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[tuple[Any, ...] | None]
) -> None:
    """Reader thread of the child: the parent's messages into `inbox`; `None` at the end."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            message = None
        loop.call_soon_threadsafe(inbox.put_nowait, message)
        if message is None:
            return


async def _job(
    batcher: ThreadBatcher,
    send: SendFn,
    number: int,
    sources: list[list[int]],
    options: SearchOptions,
) -> None:
    """One job in the child; its answer (or why it failed) goes back to the parent."""
    try:
        send(("done", number, await batcher.submit(sources, options)))
    except QueueFullError as error:
        send(("full", number, str(error)))
    except asyncio.CancelledError:
        raise
    except Exception as error:
        send(("failed", number, f"{type(error).__name__}: {error}"))
