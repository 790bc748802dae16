"""The batcher around a `Translator`, and the loop that runs it in an inference process.

`build_batcher` makes the configured batcher (static or continuous); the server uses it in its
own process with `inference: thread`. With `inference: process`, `child_main` runs in a spawned
child: it loads the model, builds the same batcher and serves the requests that the server's
`serve.engine.InferenceProcess` sends over a pipe (`serve_pipe`), answering each one, reporting
every batch's stats and cancelling the requests the server gave up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Callable
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

import torch

from seq2seq import Translator
from serve.batching import Batcher, BatchLimits, BatchStats, QueueFullError, StatsFn
from serve.continuous import ContinuousBatcher
from serve.settings import Settings

AnyBatcher = Batcher[list[int]] | ContinuousBatcher


def load_translator(settings: Settings) -> Translator:
    """`Translator.load` with the configured device and precision."""
    return Translator.load(settings.model, device=settings.device, precision=settings.precision)


def build_batcher(
    settings: Settings, translator: Translator, on_batch: StatsFn | None = None
) -> AnyBatcher:
    """The configured kind of batching around `translator`."""
    limits = BatchLimits(
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        max_wait_ms=settings.max_wait_ms,
        rejoin_wait_ms=settings.rejoin_wait_ms,
        max_queue_size=settings.max_queue_size,
    )
    translate = partial(decode, translator, settings)
    if settings.batching == "static":
        return Batcher(translate, limits, on_batch=on_batch)
    return ContinuousBatcher(
        translator, limits, translate=translate, on_batch=on_batch, max_length=settings.max_length
    )


def decode(
    translator: Translator,
    settings: Settings,
    sources: list[list[int]],
    beam_size: int,
    n_best: int = 1,
) -> list[str]:
    """One static batch within the server's batch and length limits: the `n_best` best
    translations of each source in turn (the last one repeated where the beam found fewer)."""
    options: dict[str, Any] = {
        "beam_size": beam_size,
        "batch_size": settings.max_batch_size,
        "batch_tokens": max(6000, settings.max_batch_tokens * beam_size),
        "max_length": settings.max_length,
    }
    if n_best == 1:
        return translator.translate_ids(sources, **options)
    outputs: list[str] = []
    for hypotheses in translator.nbest_ids(sources, n_best=n_best, **options):
        texts = translator.decode([hypothesis.tokens for hypothesis in hypotheses]) or [""]
        outputs += texts + texts[-1:] * (n_best - len(texts))
    return outputs


def child_main(conn: Connection, settings: Settings) -> None:
    """The child: load the model, tell the parent, then serve its messages until `None`."""
    # Ctrl-C and a group-wide SIGTERM reach us too: the parent stops us once it has drained.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    # torch's default is one thread per core: shared out among the inference processes.
    torch.set_num_threads(settings.threads or max(1, (os.cpu_count() or 1) // settings.workers))
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

    def send(message: tuple[Any, ...]) -> None:
        with lock, contextlib.suppress(OSError):
            conn.send(message)

    def report(stats: BatchStats) -> None:  # runs only once `batcher` exists
        send(("stats", stats, batcher.depth))

    batcher = build_batcher(settings, translator, on_batch=report)
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
    batcher: AnyBatcher,
    send: Callable[[tuple[Any, ...]], None],
    number: int,
    items: list[list[int]],
    tokens: int,
    beam_size: int,
    n_best: int,
) -> None:
    """One request in the child; its answer (or why it failed) goes back to the parent."""
    try:
        answer = await batcher.submit(items, tokens=tokens, beam_size=beam_size, n_best=n_best)
        send(("done", number, answer))
    except QueueFullError as error:
        send(("full", number, str(error)))
    except asyncio.CancelledError:
        raise
    except Exception as error:
        send(("failed", number, f"{type(error).__name__}: {error}"))
