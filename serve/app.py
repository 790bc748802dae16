"""The FastAPI app of the translation server.

`create_app(settings)` builds it. `open_registry(app)` opens every configured checkpoint
(`serve.registry`) and loads the models into their batchers (`serve.batching`: a worker
thread of this process, or inference processes); the lifespan calls it, unless `seq2seq
serve` (`serve.cli`) has already, so that a model that cannot load stops the command with one
line before the port is bound. The lifespan unloads every model at the end.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from seq2seq import CheckpointError
from serve.batching import Batcher, BatchLimits, StatsFn
from serve.batching.loading import Loading, ModelCall
from serve.batching.pool import BatcherPool
from serve.batching.process import ProcessBatcher
from serve.batching.thread import ThreadBatcher
from serve.body import BodyMiddleware
from serve.detect import Detector
from serve.errors import install_handlers
from serve.metrics import Metrics, MetricsMiddleware
from serve.registry import Model, Registry, open_models
from serve.routes import router
from serve.schemas import configured
from serve.settings import Settings, get_settings
from serve.status import STATIC
from serve.status import router as status_router

logger = logging.getLogger("serve")
LIMITS = ("max_texts", "max_text_chars", "max_beam_size")
"""The settings that the OpenAPI schema states as limits."""


def model_paths(settings: Settings) -> list[Path]:
    """The checkpoints to serve: every --model, else every *.pt file of --models."""
    if settings.model:
        return [Path(path) for path in settings.model]
    directory = Path(settings.models)
    found = sorted(directory.glob("*.pt")) if directory.is_dir() else []
    if not found:
        raise CheckpointError(f"{directory}: no checkpoint (*.pt) to serve; give --model FILE")
    return found


def build_registry(settings: Settings, on_batch: StatsFn | None = None) -> Registry:
    """Every configured checkpoint, opened (raises `CheckpointError` naming a bad file)."""
    return Registry(
        open_models(model_paths(settings)),
        partial(start_batcher, settings, on_batch),
        max_loaded=settings.max_loaded,
        idle_unload_s=settings.idle_unload_s,
        retry_after_s=settings.retry_after_s,
    )


async def start_batcher(
    settings: Settings, on_batch: StatsFn | None, model: Model
) -> tuple[Batcher, dict[str, Any]]:
    """`model` loaded into a started batcher of the configured kind; with its device and
    precision as it decodes."""
    loading = Loading(
        str(model.path), settings.device, settings.precision, settings.threads, settings.shortlist
    )
    limits = BatchLimits.from_settings(settings)
    batcher: Batcher
    if settings.inference == "thread":
        translator = await asyncio.to_thread(loading.load)
        call = ModelCall(translator, limits, loading.torch_threads)
        batcher, info = ThreadBatcher(call, limits), translator.info()
        batcher.on_batch = on_batch
    else:
        share = loading.sharing(settings.workers)
        members = [
            ProcessBatcher(share, limits, on_batch=on_batch) for _ in range(settings.workers)
        ]
        batcher = members[0] if len(members) == 1 else BatcherPool(members)
    try:
        await batcher.start()
    except BaseException:
        await batcher.stop()
        raise
    if settings.inference == "process":
        info = members[0].info
    return batcher, {key: info[key] for key in ("device", "precision", "shortlist")}


async def open_registry(app: FastAPI) -> Registry:
    """The app's models, opened and loaded (once); raises `CheckpointError` or
    `ModelUnavailable` naming the file that cannot be."""
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    if app.state.registry is None:
        app.state.registry = build_registry(settings, metrics.observe_batch)
        app.state.detector = await asyncio.to_thread(Detector, app.state.registry.sources)
    registry: Registry = app.state.registry
    await registry.start()
    metrics.track_queue(lambda: sum(m.batcher.depth for m in registry.models if m.batcher))
    return registry


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open and load the models (unless the command line did), serve, unload them."""
    try:
        registry = await open_registry(app)
        loaded = ", ".join(f"{m.id} ({'->'.join(m.pair)})" for m in registry.models)
        logger.info("serving %s with %s inference", loaded, app.state.settings.inference)
        yield
    finally:
        if app.state.registry is not None:
            await app.state.registry.stop()


def configured_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """`app.openapi`, telling this server's limits and languages (`serve.schemas.configured`)."""
    generic = app.openapi

    def openapi() -> dict[str, Any]:
        schema = copy.deepcopy(generic())
        registry: Registry | None = app.state.registry
        if registry is None:
            return schema
        limits = app.state.settings.model_dump(
            include={"max_texts", "max_text_chars", "max_beam_size"}
        )
        targets = sorted({target for _, target in registry.by_pair})
        return configured(schema, limits, sources=registry.sources, targets=targets)

    return openapi


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app, configured by `settings` (default: from the environment)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="seq2seq translation server",
        summary="LSTM encoder-decoder machine translation over HTTP: many language pairs, "
        "pivoting, language detection, micro-batching.",
        version="0.2.0",
        lifespan=lifespan,
    )
    app.state.settings, app.state.registry, app.state.metrics = settings, None, Metrics()
    app.openapi = configured_openapi(app)  # type: ignore[method-assign]
    install_handlers(app)
    app.include_router(router)
    app.include_router(status_router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(
        BodyMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
