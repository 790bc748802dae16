"""The server's side of an inference process: the batcher in a child, behind its interface.

With `inference: process` the batcher runs in a spawned child that holds the model
(`serve.worker.child_main`), and the server talks to it through `InferenceProcess`, which has
the batcher's interface (`start`, `submit`, `depth`, `stop`): each request goes over a pipe as
source ids, its answer comes back the same way, and a request the server gives up on (timeout,
disconnect) is cancelled in the child. The server process keeps the tokenizers and parses,
validates and answers HTTP on one core while the child decodes on another, instead of taking
turns with it for one interpreter lock.

A child that dies (killed, out of memory) fails the requests it held with
`InferenceProcessError` and is replaced at once; requests that arrive meanwhile get the same
error. A child whose parent dies sees the pipe close and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from serve.batching import QueueFullError, StatsFn, settle
from serve.settings import Settings
from serve.worker import child_main

logger = logging.getLogger(__name__)
START_TIMEOUT_S = 300.0
"""How long a child may take to import torch and load the model."""


class InferenceProcessError(RuntimeError):
    """The child process stopped or is starting again; the request may be retried."""


class InferenceProcess:
    """The batcher in a spawned child process, seen through the batcher's interface."""

    def __init__(self, settings: Settings, *, on_batch: StatsFn | None = None) -> None:
        self.settings, self.on_batch = settings, on_batch
        self.info: dict[str, Any] = {}
        """The child's `Translator.info()` (device and precision as it decodes)."""
        self.answered = 0
        """Requests this child (and those that replaced it) answered with translations."""
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[list[str]]] = {}
        self._numbers = itertools.count()
        self._depth = 0  # the child's batcher depth, as of its last report
        self._receiver: threading.Thread | None = None
        self._closing = False

    @property
    def alive(self) -> bool:
        """A child runs and takes requests."""
        return self._conn is not None and self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        """The child's process id, while one runs."""
        return self._process.pid if self.alive and self._process is not None else None

    @property
    def depth(self) -> int:
        """Requests the child holds but does not decode yet, as of its last report."""
        return self._depth

    @property
    def in_flight(self) -> int:
        """Requests sent to the child and not answered yet."""
        return len(self._pending)

    def launch(self) -> None:
        """Spawn the child and wait until its model is loaded (raises `InferenceProcessError`).
        Blocks: run it off the event loop."""
        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        parent, child = context.Pipe()
        process = context.Process(
            target=child_main, args=(child, self.settings), name="seq2seq-inference", daemon=True
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
            raise InferenceProcessError(f"the inference process could not start: {reason}")
        self.info, self._process, self._conn = payload, process, parent

    def start(self) -> None:
        """Route the child's answers to the running event loop (after `launch`)."""
        self._loop = asyncio.get_running_loop()
        self._receiver = threading.Thread(
            target=self._receive, name="inference-receiver", daemon=True
        )
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

    async def submit(
        self, items: list[list[int]], *, tokens: int, beam_size: int, n_best: int = 1
    ) -> list[str]:
        """Send `items` to the child and wait for their translations (raises `QueueFullError`
        or `InferenceProcessError`); cancelling the caller cancels the job in the child."""
        assert self._loop is not None, "start() first"
        number = next(self._numbers)
        future: asyncio.Future[list[str]] = self._loop.create_future()
        self._pending[number] = future
        try:
            self._send(("job", number, items, tokens, beam_size, n_best))
            return await future
        finally:
            del self._pending[number]
            if future.cancelled():  # the caller gave up: so does the child
                with contextlib.suppress(InferenceProcessError):
                    self._send(("cancel", number))

    def _tell_child_to_exit(self) -> None:
        with self._send_lock, contextlib.suppress(OSError):
            if self._conn is not None:
                self._conn.send(None)

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            if not self.alive:
                raise InferenceProcessError("the inference process is starting again")
            assert self._conn is not None
            try:
                self._conn.send(message)
            except OSError as error:
                raise InferenceProcessError("the inference process stopped") from error

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
        result: list[str] | BaseException = payload
        if kind == "done":
            self.answered += 1
        elif kind == "full":
            result = QueueFullError(payload)
        elif kind == "failed":
            result = RuntimeError(f"translation failed in the inference process: {payload}")
        self._settle(number, result)

    def _settle(self, number: int, result: list[str] | BaseException) -> None:
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
                InferenceProcessError("the inference process stopped; a new one is starting")
            )

    def _relaunch(self) -> None:
        """Start a new child, trying again (ever more slowly) until one starts or we close."""
        logger.error("the inference process stopped; starting a new one")
        for attempt in itertools.count():
            if self._closing:
                return
            try:
                self.launch()
            except InferenceProcessError as error:  # the model loaded before: try again
                logger.error("%s (attempt %d)", error, attempt + 1)
                time.sleep(min(2.0**attempt, 60.0))
                continue
            if self._closing:  # stop() came while it loaded and found no child to tell
                self._tell_child_to_exit()
            return

    def _fail_pending(self, error: BaseException) -> None:
        for number in list(self._pending):
            self._settle(number, error)


class InferencePool:
    """`workers` inference processes behind the batcher's interface: each request goes to the
    running one with the fewest requests in flight, so that each child batches its share on
    its own cores."""

    def __init__(self, settings: Settings, *, on_batch: StatsFn | None = None) -> None:
        self.processes = [
            InferenceProcess(settings, on_batch=on_batch) for _ in range(settings.workers)
        ]

    @property
    def info(self) -> dict[str, Any]:
        """What the children decode with (they all load the same model)."""
        return self.processes[0].info

    @property
    def alive(self) -> bool:
        """At least one child takes requests."""
        return any(process.alive for process in self.processes)

    @property
    def depth(self) -> int:
        """Requests the children hold but do not decode yet."""
        return sum(process.depth for process in self.processes)

    def launch(self) -> None:
        """Start every child (blocks until their models are loaded)."""
        for process in self.processes:
            process.launch()

    def start(self) -> None:
        """Route the children's answers to the running event loop."""
        for process in self.processes:
            process.start()

    async def stop(self) -> None:
        """Stop every child."""
        await asyncio.gather(*(process.stop() for process in self.processes))

    async def submit(
        self, items: list[list[int]], *, tokens: int, beam_size: int, n_best: int = 1
    ) -> list[str]:
        """Translate `items` in the least busy running child (raises `QueueFullError`, or
        `InferenceProcessError` while none runs)."""
        running = [process for process in self.processes if process.alive]
        if not running:
            raise InferenceProcessError("the inference process is starting again")
        chosen = min(running, key=lambda process: process.in_flight)
        return await chosen.submit(items, tokens=tokens, beam_size=beam_size, n_best=n_best)
