"""Error answers with reasons: 4xx for every bad input, never a bare 500.

Every error body is `{"detail": ..., "error": "one line"}`. 422 keeps FastAPI's `detail` list
(each item has `loc`, `msg`, `type`). `BodyLimitMiddleware` answers 413 before the body is
parsed, from `Content-Length` or from the bytes actually received.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


def error_body(detail: Any, error: str) -> dict[str, Any]:
    """The shape of every error response."""
    return {"detail": detail, "error": error}


def validation_error(loc: tuple[str | int, ...], message: str, kind: str) -> RequestValidationError:
    """A 422 raised by route code, shaped like pydantic's own errors."""
    return RequestValidationError([{"type": kind, "loc": loc, "msg": message}])


def _summary(errors: list[dict[str, Any]]) -> str:
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg')}{more}" if where else f"{first.get('msg')}{more}"


async def _on_validation(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {key: item[key] for key in ("type", "loc", "msg") if key in item} for item in error.errors()
    ]
    errors = json.loads(json.dumps(errors, default=str))
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


class BodyLimitMiddleware:
    """Rejects bodies over `max_bytes` with 413; replays accepted bodies to the app."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if self._declared(scope) > self.max_bytes:
            await self._reject(scope, send)
            return
        body = await self._read(receive)
        if body is None:
            await self._reject(scope, send)
            return
        await self.app(scope, replay(body, receive), send)

    def _declared(self, scope: Scope) -> int:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0
        return 0

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it exceeds the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _reject(self, scope: Scope, send: Send) -> None:
        message = f"request body larger than {self.max_bytes} bytes"
        response = JSONResponse(error_body(message, message), status_code=413)
        await response(scope, no_receive, send)


async def read_body(receive: Receive) -> bytes:
    """The whole request body (already bounded by `BodyLimitMiddleware`)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that yields `body` once, then the client's own (for disconnects)."""
    sent = False

    async def receive_body() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_body


async def no_receive() -> Message:
    """The receive channel of a response sent without reading the request."""
    return {"type": "http.disconnect"}
