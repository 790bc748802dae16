"""Where requests are batched and decoded: in the server process, or in a child process.

`build_batcher` makes the configured batcher (static or continuous) around a `Translator`.
With `inference: process` that batcher runs in a spawned child that holds the model, and the
server talks to it through `InferenceProcess`, which has the batcher's interface (`start`,
`submit`, `depth`, `stop`): each request goes over a pipe as source ids, its answer comes back
the same way, and a request the server gives up on (timeout, disconnect) is cancelled in the
child. The server process keeps the tokenizers and parses, validates and answers HTTP on one
core while the child decodes on another, instead of taking turns with it for one interpreter
lock.

A child that dies (killed, out of memory) fails the requests it held with
`InferenceProcessError` and is replaced at once; requests that arrive meanwhile get the same
error. A child whose parent dies sees the pipe close and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import signal
import threading
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import torch

from seq2seq import Translator
from serve.batching import Batcher, BatchLimits, QueueFullError, StatsFn
from serve.continuous import ContinuousBatcher
from serve.settings import Settings

START_TIMEOUT_S = 300.0
"""How long a child may take to import torch and load the model."""
AnyBatcher = Batcher[list[int]] | ContinuousBatcher


class InferenceProcessError(RuntimeError):
    """The child process stopped or is starting again; the request may be retried."""


def load_translator(settings: Settings) -> Translator:
    """`Translator.load` with the configured device and precision."""
    return Translator.load(settings.model, device=settings.device, precision=settings.precision)


def build_batcher(settings: Settings, translator: Translator,
                  on_batch: StatsFn | None = None) -> AnyBatcher:
    """The configured kind of batching around `translator`."""
    limits = BatchLimits(max_batch_size=settings.max_batch_size,
                         max_batch_tokens=settings.max_batch_tokens,
                         max_wait_ms=settings.max_wait_ms, rejoin_wait_ms=settings.rejoin_wait_ms,
                         max_queue_size=settings.max_queue_size)
    translate = partial(decode, translator, settings)
    if settings.batching == "static":
        return Batcher(translate, limits, on_batch=on_batch)
    return ContinuousBatcher(translator, limits, translate=translate, on_batch=on_batch,
                             max_length=settings.max_length)


def decode(translator: Translator, settings: Settings,
           sources: list[list[int]], beam_size: int) -> list[str]:
    """One static batch: `translate_ids` within the server's batch and length limits."""
    return translator.translate_ids(
        sources, beam_size=beam_size, batch_size=settings.max_batch_size,
        batch_tokens=max(6000, settings.max_batch_tokens * beam_size),
        max_length=settings.max_length)


class InferenceProcess:
    """The batcher in a spawned child process, seen through the batcher's interface."""

    def __init__(self, settings: Settings, *, on_batch: StatsFn | None = None) -> None:
        self.settings, self.on_batch = settings, on_batch
        self.info: dict[str, Any] = {}
        """The child's `Translator.info()` (device and precision as it decodes)."""
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

    def launch(self) -> None:
        """Spawn the child and wait until its model is loaded (raises `InferenceProcessError`).
        Blocks: run it off the event loop."""
        context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools
        parent, child = context.Pipe()
        process = context.Process(target=child_main, args=(child, self.settings),
                                  name="seq2seq-inference", daemon=True)
        process.start()
        child.close()
        payload: Any
        try:
            kind, payload = parent.recv() if parent.poll(START_TIMEOUT_S) else ("slow", None)
        except EOFError:
            kind, payload = "error", "it exited while loading"
        if kind != "ready":
            parent.close()
            process.terminate()
            process.join(5)
            reason = payload if kind == "error" else f"no model within {START_TIMEOUT_S:.0f} s"
            raise InferenceProcessError(f"the inference process could not start: {reason}")
        self.info, self._process, self._conn = payload, process, parent

    def start(self) -> None:
        """Route the child's answers to the running event loop (after `launch`)."""
        self._loop = asyncio.get_running_loop()
        self._receiver = threading.Thread(target=self._receive, name="inference-receiver",
                                          daemon=True)
        self._receiver.start()

    async def stop(self) -> None:
        """Let the child fail what it holds and exit, then fail whatever is left here."""
        self._closing = True
        with self._send_lock, contextlib.suppress(OSError):
            if self._conn is not None:
                self._conn.send(None)
        if self._receiver is not None:
            await asyncio.to_thread(self._receiver.join, 30)
        if self._process is not None:
            await asyncio.to_thread(self._process.join, 10)
            if self._process.is_alive():
                self._process.terminate()
        self._fail_pending(RuntimeError("the server is shutting down"))

    async def submit(self, items: list[list[int]], *, tokens: int, beam_size: int) -> list[str]:
        """Send `items` to the child and wait for their translations (raises `QueueFullError`
        or `InferenceProcessError`); cancelling the caller cancels the job in the child."""
        assert self._loop is not None, "start() first"
        number = next(self._numbers)
        future: asyncio.Future[list[str]] = self._loop.create_future()
        self._pending[number] = future
        try:
            self._send(("job", number, items, tokens, beam_size))
            return await future
        finally:
            del self._pending[number]
            if future.cancelled():  # the caller gave up: so does the child
                with contextlib.suppress(InferenceProcessError):
                    self._send(("cancel", number))

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
        if kind == "full":
            result = QueueFullError(payload)
        elif kind == "failed":
            result = RuntimeError(f"translation failed in the inference process: {payload}")
        self._settle(number, result)

    def _settle(self, number: int, result: list[str] | BaseException) -> None:
        assert self._loop is not None
        future = self._pending.get(number)
        if future is not None:
            self._loop.call_soon_threadsafe(_resolve, future, result)

    def _forget_child(self) -> None:
        with self._send_lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.join(5)
        if not self._closing:
            self._fail_pending(InferenceProcessError(
                "the inference process stopped; a new one is starting"))

    def _relaunch(self) -> None:
        while not self._closing:
            try:
                self.launch()
                return
            except InferenceProcessError:
                continue  # the model loaded before; a failed start is worth another try

    def _fail_pending(self, error: BaseException) -> None:
        for number in list(self._pending):
            self._settle(number, error)


def _resolve(future: asyncio.Future[list[str]], result: list[str] | BaseException) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def child_main(conn: Connection, settings: Settings) -> None:
    """The child: load the model, tell the parent, then serve its messages until `None`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group; the parent stops us
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        translator = load_translator(settings)
    except Exception as error:  # the parent reports it; a traceback here would say no more
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    asyncio.run(serve_pipe(conn, settings, translator))


async def serve_pipe(conn: Connection, settings: Settings, translator: Translator) -> None:
    """Run the configured batcher around `translator` for the requests that come over `conn`,
    until `None` comes or the other end closes."""
    loop, lock = asyncio.get_running_loop(), threading.Lock()
    batcher: AnyBatcher | None = None

    def send(message: tuple[Any, ...]) -> None:
        with lock, contextlib.suppress(OSError):
            conn.send(message)

    batcher = build_batcher(settings, translator,
                            on_batch=lambda stats: send(("stats", stats, _depth(batcher))))
    batcher.start()
    inbox: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()
    threading.Thread(target=_read, args=(conn, loop, inbox), daemon=True).start()
    send(("ready", translator.info()))
    jobs: dict[int, asyncio.Task[None]] = {}
    while (message := await inbox.get()) is not None:
        if message[0] == "job":
            task = jobs[message[1]] = loop.create_task(_job(batcher, send, *message[1:]))
            task.add_done_callback(partial(_forget_job, jobs, message[1]))
        elif message[1] in jobs:  # ("cancel", number)
            jobs[message[1]].cancel()
    await batcher.stop()  # fails what it holds; the jobs send those errors
    await asyncio.gather(*jobs.values(), return_exceptions=True)


def _forget_job(jobs: dict[int, asyncio.Task[None]], number: int, _: object) -> None:
    jobs.pop(number, None)


def _depth(batcher: AnyBatcher | None) -> int:
    return batcher.depth if batcher is not None else 0


def _read(conn: Connection, loop: asyncio.AbstractEventLoop,
          inbox: asyncio.Queue[tuple[Any, ...] | None]) -> None:
    """Reader thread of the child: the parent's messages into `inbox`; `None` at the end."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            message = None
        loop.call_soon_threadsafe(inbox.put_nowait, message)
        if message is None:
            return


async def _job(batcher: AnyBatcher, send: Callable[[tuple[Any, ...]], None], number: int,
               items: list[list[int]],
               tokens: int, beam_size: int) -> None:
    """One request in the child; its answer (or why it failed) goes back to the parent."""
    try:
        send(("done", number, await batcher.submit(items, tokens=tokens, beam_size=beam_size)))
    except QueueFullError as error:
        send(("full", number, str(error)))
    except asyncio.CancelledError:
        raise
    except Exception as error:
        send(("failed", number, f"{type(error).__name__}: {error}"))

