"""`seq2seq serve`: its flags are made from the `Settings` fields, so there is one list of them.

Each field `some_name` is `--some-name` (booleans also `--no-some-name`, lists repeat the
flag), with the field's docstring as help. A flag left out keeps the environment's value
(`SEQ2SEQ_SOME_NAME`) or the default. The models are opened and loaded before the port is
bound, so a missing or bad checkpoint stops the command with one line and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo

from seq2seq.arguments import UsageError
from serve.registry import ModelUnavailable
from serve.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per `Settings` field."""
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = f"{field.description} [{_default(name, field)}]"
        parser.add_argument(flag, dest=name, default=None, help=help_text, **_kind(field))


def _kind(field: FieldInfo) -> dict[str, Any]:
    """How argparse reads the field's type."""
    annotation = field.annotation
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return {"action": "append", "metavar": "VALUE"}
    if origin is typing.Literal:
        return {"choices": list(args)}
    if origin in (typing.Union, types.UnionType):  # X | None
        annotation = next(arg for arg in args if arg is not type(None))
    if annotation in (int, float):
        return {"type": annotation}
    return {"metavar": "VALUE" if annotation is SecretStr else None}


def _default(name: str, field: FieldInfo) -> str:
    env = f"env SEQ2SEQ_{name.upper()}"
    default = field.default
    if default in (None, [], "") or isinstance(default, SecretStr):
        return env
    if isinstance(default, bool):
        return f"{'on' if default else 'off'}; {env}"
    return f"default {default}; {env}"


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Environment settings with the given flags on top (a bad value: `UsageError`)."""
    given = {name: getattr(args, name) for name in Settings.model_fields}
    try:
        return Settings(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        where = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "settings"
        raise UsageError(f"{where}: {first['msg']}") from error


def run(args: argparse.Namespace) -> int:
    """Train missing models if asked, open and load the models, serve until interrupted."""
    settings = settings_from_args(args)
    if settings.train_if_missing:
        train_missing(settings)
    asyncio.run(serve(settings))
    return 0


async def serve(settings: Settings) -> None:
    """Load the models (a failure: `UsageError` naming the file), then run uvicorn."""
    import uvicorn

    from serve.app import create_app, open_registry

    app = create_app(settings)
    try:
        await open_registry(app)
    except ModelUnavailable as error:
        if app.state.registry is not None:
            await app.state.registry.stop()
        raise UsageError(str(error)) from error
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_s,
    )
    await uvicorn.Server(config).serve()


def train_missing(settings: Settings) -> None:
    """Train every --model file that does not exist from the preset of the same name."""
    missing = [Path(path) for path in settings.model if not Path(path).exists()]
    if not missing:
        return
    try:  # imported by name: a server installation may come without the training package
        models = importlib.import_module("training.models")
    except ImportError as error:
        raise UsageError(f"cannot train: the training package is missing ({error})") from error
    for path in missing:
        models.train_model(models.preset_for(path), path)
