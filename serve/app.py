"""The FastAPI app and the `seq2seq serve` command.

`create_app(settings)` builds the app; its lifespan loads the model once (unless one is handed
in) into `app.state.translator` and starts the batcher, or with `inference: process` a child
process that batches and decodes (`serve.engine`). `seq2seq serve` loads the model
*before* uvicorn binds the port, so a missing or bad checkpoint stops the command with one
line and exit status 2 rather than a server traceback; with `--train-if-missing` it first
trains the default Multi30k preset when the model file does not exist.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import shutil
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import torch
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from seq2seq import TextCodec, Translator
from seq2seq.cli import UsageError
from serve.engine import InferencePool
from serve.errors import BodyLimitMiddleware, install_handlers
from serve.libretranslate import BodyFormatMiddleware
from serve.metrics import Metrics, MetricsMiddleware
from serve.routes import STATIC, router
from serve.settings import Settings, get_settings
from serve.worker import AnyBatcher, build_batcher, load_translator

logger = logging.getLogger("serve")
DEFAULT_PRESET = "multi30k_de_en.yaml"


def server_translator(settings: Settings) -> TextCodec:
    """The server process's model as configured; only its text side (tokenizers, languages,
    metadata, no weights) when child processes decode."""
    if settings.inference == "process":
        return TextCodec.load(settings.model)
    return load_translator(settings)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model once, start the batcher (in a child process if so configured); stop it."""
    settings: Settings = app.state.settings
    if settings.threads:
        torch.set_num_threads(settings.threads)
    if app.state.translator is None:
        app.state.translator = server_translator(settings)
    codec: TextCodec = app.state.translator
    app.state.model_id = codec.metadata.get("name") or Path(settings.model).name
    batcher = await _start_batcher(app, settings, codec)
    app.state.metrics.track_queue(lambda: batcher.depth)
    app.state.batcher = batcher
    where = (
        f"{settings.workers} inference process(es)"
        if settings.inference == "process"
        else "the server process"
    )
    logger.info(
        "model %s loaded on %s; %s batching in %s",
        app.state.model_id,
        app.state.model_info["device"],
        settings.batching,
        where,
    )
    try:
        yield
    finally:
        await batcher.stop()


async def _start_batcher(
    app: FastAPI, settings: Settings, codec: TextCodec
) -> AnyBatcher | InferencePool:
    """The configured batcher, started, reporting to the app's metrics; sets `model_info`.
    `codec` is a whole `Translator` unless child processes decode."""
    observe = app.state.metrics.observe_batch
    batcher: AnyBatcher | InferencePool
    if settings.inference == "process":
        batcher = InferencePool(settings, on_batch=observe)
        await asyncio.to_thread(batcher.launch)
        app.state.model_info = batcher.info
    else:
        if not isinstance(codec, Translator):
            raise TypeError("inference 'thread' decodes in this process: it needs a Translator")
        batcher = build_batcher(settings, codec, on_batch=observe)
        app.state.model_info = codec.info()
    batcher.start()
    return batcher


def create_app(settings: Settings | None = None, *, translator: TextCodec | None = None) -> FastAPI:
    """The app; `translator` (from `server_translator`) skips loading `settings.model`, which
    the CLI does first."""
    settings = settings or get_settings()
    app = FastAPI(
        title="seq2seq translation server",
        summary="LSTM encoder-decoder machine translation over HTTP, with micro-batching.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.translator = translator
    app.state.metrics = Metrics()
    install_handlers(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(BodyFormatMiddleware)  # innermost: sees bodies the limit has passed
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seq2seq serve`; each also comes from `SEQ2SEQ_<NAME>` in the environment."""
    parser.add_argument("--model", help="checkpoint file (default: models/multi30k_de_en.pt)")
    parser.add_argument("--host", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8000)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto")
    parser.add_argument("--precision", choices=["fp32", "bf16", "int8"], help="default fp32")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: one per core)")
    parser.add_argument("--beam-size", type=int, help="default beam width (default 1, greedy)")
    parser.add_argument(
        "--batching",
        choices=["static", "continuous"],
        help="static [default]: gather, translate, answer; continuous: requests "
        "join the running batch between decoder steps",
    )
    parser.add_argument(
        "--inference",
        choices=["thread", "process"],
        help="thread [default]: batch and decode in the server process; "
        "process: in a child process, apart from HTTP handling",
    )
    parser.add_argument(
        "--workers", type=int, help="inference processes with --inference process (default 1)"
    )
    parser.add_argument("--max-batch-size", type=int, help="sentences per batch; 1 = no batching")
    parser.add_argument("--max-wait-ms", type=float, help="longest wait to fill a batch")
    parser.add_argument(
        "--no-split",
        dest="split_sentences",
        action="store_const",
        const=False,
        help="translate every text whole, not sentence by sentence",
    )
    parser.add_argument(
        "--train-if-missing",
        action="store_true",
        help="train the default Multi30k preset when --model does not exist",
    )
    parser.add_argument("--train-config", help="training preset used by --train-if-missing")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment settings with the given command-line options on top."""
    names = (
        "model",
        "host",
        "port",
        "device",
        "precision",
        "threads",
        "beam_size",
        "batching",
        "inference",
        "workers",
        "max_batch_size",
        "max_wait_ms",
        "split_sentences",
    )
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    return Settings(**given)


def run(args: argparse.Namespace) -> int:
    """Load (or first train) the model, then serve until interrupted."""
    import uvicorn

    try:
        settings = settings_from_args(args)
    except ValueError as error:  # pydantic's ValidationError: name the field in one line
        raise UsageError(str(error).replace("\n", " ")) from error
    if args.train_if_missing and not Path(settings.model).exists():
        train_default_model(Path(settings.model), args.train_config)
    if not Path(settings.model).is_file():
        raise UsageError(
            f"model file {settings.model} not found (add --train-if-missing to "
            "train the default Multi30k model first)"
        )
    app = create_app(settings, translator=server_translator(settings))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0


def train_default_model(target: Path, config: str | None) -> None:
    """Train the preset (default: Multi30k de->en) and copy its best checkpoint to `target`."""
    try:  # imported by name: the server runs without the training package
        train_module = importlib.import_module("training.train")
    except ImportError as error:
        message = f"cannot train: the training package is not available ({error})"
        raise UsageError(message) from error
    preset = config or str(Path(str(train_module.__file__)).parent / "configs" / DEFAULT_PRESET)
    print(f"{target} does not exist: training {preset} first (this takes a while)", file=sys.stderr)
    best = Path(train_module.train_from_config(preset))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, target)


def main() -> None:
    """Run the server as `python -m serve.app`."""
    from seq2seq.cli import main as cli_main

    raise SystemExit(cli_main(["serve", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
