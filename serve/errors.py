"""Error answers with reasons: 4xx for every bad input, never a bare 500.

Every error body is `{"detail": ..., "error": "one line"}`. 422 keeps FastAPI's `detail` list
(each item has `loc`, `msg`, `type`), without the entries pydantic adds for each member of an
optional field's type, so that `error` names the field and what is wrong with it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

logger = logging.getLogger(__name__)
UNION_MEMBER = re.compile(r"^(none|int|str|bool|float|constrained-\w+|[\w-]+\[.*\])$")
"""How pydantic names the member of a union type in an error's location."""


def error_body(detail: Any, error: str) -> dict[str, Any]:
    """The shape of every error response."""
    return {"detail": detail, "error": error}


def validation_error(loc: tuple[str | int, ...], message: str, kind: str) -> RequestValidationError:
    """A 422 raised by route code, shaped like pydantic's own errors."""
    return RequestValidationError([{"type": kind, "loc": loc, "msg": message}])


def _readable(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Errors without union-member noise: 'beam_size: Input should be a valid integer' rather
    than 'beam_size.int: ... (and 1 more)' for the int and None members of `int | None`."""
    kept = [error for error in errors if error.get("type") != "none_required"] or errors
    cleaned: list[dict[str, Any]] = []
    for error in kept:
        loc = [
            p for p in error.get("loc", ()) if not (isinstance(p, str) and UNION_MEMBER.match(p))
        ]
        item = {"type": error.get("type"), "loc": loc, "msg": error.get("msg")}
        if item not in cleaned:
            cleaned.append(item)
    return cleaned


def _summary(errors: list[dict[str, Any]]) -> str:
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg')}{more}" if where else f"{first.get('msg')}{more}"


async def _on_validation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = json.loads(json.dumps(_readable(list(error.errors())), default=str))
    return JSONResponse(error_body(errors, _summary(errors)), status_code=422)


async def _on_http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    detail = error.detail if isinstance(error.detail, str) else str(error.detail)
    return JSONResponse(
        error_body(detail, detail), status_code=error.status_code, headers=error.headers
    )


async def _on_unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    message = f"internal error: {type(error).__name__}"
    return JSONResponse(error_body(message, message), status_code=500)


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error a reason."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
