"""The models a server holds: one per language pair, each with its own batcher, loaded when
needed and unloaded when idle, and the routes between languages (direct, or through a pivot).

Every checkpoint's text side (tokenizers, languages) is read at startup, so a bad file stops
the server before it listens; the weights load in the batcher. `--max-loaded N` keeps at most
N models' weights in memory (loading one more unloads the one unused for longest, unless it
is busy), and `--idle-unload-s S` unloads a model no request has used for S seconds. A
request for an unloaded model waits while it loads; other models keep serving. A model that
fails to load answers 503 with the reason until `retry_after_s` has passed, then loading is
tried again; the other pairs are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from seq2seq import CheckpointError, TextCodec, Translator
from serve.batching import Batcher

logger = logging.getLogger(__name__)
PIVOT = "en"
"""The pivot language tried first (LibreTranslate pivots through English too)."""
State = Literal["unloaded", "loading", "loaded", "failed"]
StartFn = Callable[["Model"], Awaitable[tuple[Batcher, dict[str, Any]]]]
"""Loads a model into a started batcher; returns it with where and how it decodes."""


class NoRoute(Exception):
    """No model, and no chain of two, translates this pair; the message names those that do."""


class ModelUnavailable(Exception):
    """The model could not be loaded (or is starting again); retry later."""


@dataclass(eq=False)
class Model:
    """One checkpoint: its text side always, its batcher while loaded."""

    path: Path
    codec: TextCodec
    state: State = "unloaded"
    batcher: Batcher | None = None
    decoding: dict[str, Any] = field(default_factory=dict)
    """Device and precision, once loaded."""
    error: str = ""
    failed_at: float = 0.0
    last_used: float = field(default_factory=time.monotonic)
    active: int = 0
    """Requests using the batcher now: an active model is never unloaded."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inspector: Translator | None = None
    """An fp32 copy on the CPU for `/inspect`, loaded on first use (see `Registry.inspector`)."""

    @property
    def id(self) -> str:
        """The checkpoint's file name."""
        return self.path.name

    @property
    def pair(self) -> tuple[str, str]:
        """(source, target) language codes."""
        return self.codec.src_lang or "?", self.codec.tgt_lang or "?"

    def describe(self) -> dict[str, Any]:
        """What `GET /models` shows of it."""
        info = self.codec.info()
        validation = self.codec.metadata.get("val") or {}
        return {
            "id": self.id,
            "source": self.pair[0],
            "target": self.pair[1],
            "file": str(self.path),
            "parameters": info["parameters"],
            **self.decoding,
            "state": self.state,
            "error": self.error or None,
            "val_bleu": validation.get("val_bleu", self.codec.metadata.get("best_val_bleu")),
        }


@dataclass(frozen=True)
class Route:
    """How to translate between two languages: one model, or two through `pivot`."""

    legs: tuple[Model, ...]
    pivot: str | None = None


def open_models(paths: Sequence[Path]) -> list[Model]:
    """The text side of every checkpoint (raises `CheckpointError` naming a bad file, or two
    files that translate the same pair)."""
    models: dict[tuple[str, str], Model] = {}
    for path in paths:
        model = Model(path, TextCodec.load(path))
        if not (model.codec.src_lang and model.codec.tgt_lang) and len(paths) > 1:
            raise CheckpointError(f"{path}: names no languages, so it cannot share a server")
        if model.pair in models:
            first = models[model.pair].path
            raise CheckpointError(f"{first} and {path} both translate {'->'.join(model.pair)}")
        models[model.pair] = model
    return list(models.values())


class Registry:
    """The models, their routes, and their loading and unloading."""

    def __init__(
        self,
        models: Sequence[Model],
        start: StartFn,
        *,
        max_loaded: int = 0,
        idle_unload_s: float = 0.0,
        retry_after_s: float = 1.0,
    ) -> None:
        self.models = list(models)
        self.by_pair = {model.pair: model for model in self.models}
        self._start, self.max_loaded = start, max_loaded
        self.idle_unload_s, self.retry_after_s = idle_unload_s, retry_after_s
        self._watcher: asyncio.Task[None] | None = None
        self.started = False

    @property
    def sources(self) -> list[str]:
        """Languages some model translates from."""
        return sorted({source for source, _ in self.by_pair})

    async def start(self) -> None:
        """Load the models (at most `max_loaded`); raises `ModelUnavailable` naming the first
        that fails. Does nothing when started already."""
        if self.started:
            return
        self.started = True
        for model in self.models[: self.max_loaded or None]:
            async with self.using(model):
                pass
        if self.idle_unload_s > 0:
            self._watcher = asyncio.get_running_loop().create_task(self._unload_idle())

    async def stop(self) -> None:
        """Unload every model."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        for model in self.models:
            await self._unload(model, force=True)

    def route(self, source: str | None, target: str | None) -> Route:
        """The way from `source` to `target`; None stands for "the only one there is".
        Raises `NoRoute` naming what this server translates."""
        only = self.models[0] if len(self.models) == 1 else None
        if only and source in (None, only.pair[0]) and target in (None, only.pair[1]):
            return Route((only,))
        if source is None and len(self.sources) == 1:
            source = self.sources[0]
        if source is None or target is None:
            raise NoRoute(f"{'source' if source is None else 'target'} language needed")
        if (source, target) in self.by_pair:
            return Route((self.by_pair[source, target],))
        if source == target:
            raise NoRoute(f"unsupported language pair {source}->{target}")
        pivots = sorted(self._pivots(source, target), key=lambda code: (code != PIVOT, code))
        if pivots:
            pivot = pivots[0]
            return Route((self.by_pair[source, pivot], self.by_pair[pivot, target]), pivot)
        raise NoRoute(f"unsupported language pair {source}->{target}")

    def targets(self, source: str) -> list[str]:
        """Languages `source` translates into, directly or through a pivot."""
        direct = {target for (start, target) in self.by_pair if start == source}
        pivoted = {end for (start, end) in self.by_pair if start in direct} - {source}
        return sorted(direct | pivoted)

    def describe_pairs(self) -> str:
        """'de->en, en->fr (through en: de->fr)': for error messages."""
        direct = sorted(f"{source}->{target}" for source, target in self.by_pair)
        pivoted = [
            f"{source}->{target}"
            for source in self.sources
            for target in self.targets(source)
            if (source, target) not in self.by_pair
        ]
        through = f" (through a pivot: {', '.join(pivoted)})" if pivoted else ""
        return ", ".join(direct) + through

    def _pivots(self, source: str, target: str) -> list[str]:
        return [
            end
            for (start, end) in self.by_pair
            if start == source and (end, target) in self.by_pair
        ]

    async def inspector(self, model: Model) -> Translator:
        """`model` in fp32 on the CPU for reading its gates, apart from its batcher (which may
        decode in another process or at another precision); loaded once, dropped on unload."""
        async with model.lock:
            if model.inspector is None:
                model.inspector = await asyncio.to_thread(Translator.load, model.path, "cpu")
            return model.inspector

    @contextlib.asynccontextmanager
    async def using(self, model: Model) -> AsyncIterator[Batcher]:
        """The model's batcher, loading it first if needed (raises `ModelUnavailable`); the
        model is not unloaded while this is held."""
        batcher = await self._acquire(model)
        try:
            yield batcher
        finally:
            model.active -= 1
            model.last_used = time.monotonic()

    async def _acquire(self, model: Model) -> Batcher:
        async with model.lock:
            if model.state == "failed" and time.monotonic() - model.failed_at < self.retry_after_s:
                raise ModelUnavailable(f"{model.id} could not be loaded: {model.error}")
            if model.batcher is None:
                await self._load(model)
            assert model.batcher is not None
            model.active += 1
            return model.batcher

    async def _load(self, model: Model) -> None:
        """Load `model` (under its lock), first unloading another when `max_loaded` says so."""
        await self._make_room(model)
        model.state = "loading"
        try:
            model.batcher, model.decoding = await self._start(model)
        except Exception as error:
            model.state, model.error = (
                "failed",
                str(error).splitlines()[0] if str(error) else type(error).__name__,
            )
            model.failed_at = time.monotonic()
            logger.error("%s could not be loaded: %s", model.id, model.error)
            raise ModelUnavailable(f"{model.id} could not be loaded: {model.error}") from error
        model.state, model.error = "loaded", ""
        logger.info("%s loaded (%s)", model.id, "->".join(model.pair))

    async def _make_room(self, model: Model) -> None:
        loaded = [
            other for other in self.models if other.batcher is not None and other is not model
        ]
        if not self.max_loaded or len(loaded) < self.max_loaded:
            return
        idle = [other for other in loaded if other.active == 0 and not other.lock.locked()]
        if idle:
            await self._unload(min(idle, key=lambda other: other.last_used))
        else:
            logger.warning("every loaded model is busy: loading %s beyond max_loaded", model.id)

    async def _unload(self, model: Model, *, force: bool = False) -> None:
        async with model.lock:
            if model.batcher is None or (model.active and not force):
                return
            batcher, model.batcher, model.decoding = model.batcher, None, {}
            model.inspector = None
            model.state = "unloaded"
            await batcher.stop()
            logger.info("%s unloaded", model.id)

    async def _unload_idle(self) -> None:
        """Every little while, unload the models idle for `idle_unload_s`."""
        while True:
            await asyncio.sleep(max(0.05, min(self.idle_unload_s / 4, 5.0)))
            now = time.monotonic()
            for model in self.models:
                idle = now - model.last_used >= self.idle_unload_s
                if model.batcher is not None and model.active == 0 and idle:
                    await self._unload(model)
