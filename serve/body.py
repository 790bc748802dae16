"""Request bodies, checked before any route sees them: size, time to arrive, type, JSON.

`BodyMiddleware` reads every POST body once and answers, with a reason:
- 413 for a body over `max_body_bytes` (from `Content-Length`, or from the bytes received);
- 408 for a body not received within `body_timeout_s` (a slow or stalled upload), and the
  connection closes;
- 415 for a body that is neither JSON nor a urlencoded form;
- 422 for a JSON body that is not UTF-8, not JSON, nested too deeply or holding a number too
  long to read, and for an unreadable form.
LibreTranslate clients send urlencoded forms; they are rewritten as the JSON object the routes
read (`serve.libretranslate.form_to_json`), so one route, one validation and one OpenAPI
schema serve both. A "form" that starts with `{` is JSON sent with curl -d's default type.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.errors import error_body
from serve.libretranslate import form_to_json

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


class BodyError(Exception):
    """A body answered with `status` and a one-line reason."""

    def __init__(self, status: int, reason: str, *, close: bool = False) -> None:
        super().__init__(reason)
        self.status, self.reason, self.close = status, reason, close


class BodyMiddleware:
    """Reads, bounds and checks POST bodies; replays accepted ones to the app as JSON."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._checked(scope, receive)
        except BodyError as error:
            await _answer(scope, send, error)
            return
        _as_json(scope, len(body))
        await self.app(scope, replay(body, receive), send)

    async def _checked(self, scope: Scope, receive: Receive) -> bytes:
        media_type, charset = _content_type(scope)
        if _declared_length(scope) > self.max_bytes:
            raise BodyError(413, f"request body larger than {self.max_bytes} bytes")
        if not _is_json(media_type) and media_type not in (FORM, ""):
            raise BodyError(415, f"unsupported content type {media_type}: send {JSON} or {FORM}")
        body = await self._read(receive)
        if not _is_json(media_type) and not body.lstrip().startswith((b"{", b"[")):
            try:
                return form_to_json(body)
            except ValueError as error:  # UnicodeDecodeError is one
                raise BodyError(422, f"form body not readable: {_first_line(error)}") from error
        if charset not in ("", "utf-8", "utf8"):
            raise BodyError(422, f"JSON bodies must be UTF-8, not charset={charset}")
        check_json(body)
        return body

    async def _read(self, receive: Receive) -> bytes:
        """The whole body, within the size and time limits."""
        deadline = time.monotonic() + self.timeout_s
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                reason = f"request body not received within {self.timeout_s:g} s"
                raise BodyError(408, reason, close=True) from None
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                raise BodyError(413, f"request body larger than {self.max_bytes} bytes")
            if not message.get("more_body", False):
                return b"".join(chunks)


def check_json(body: bytes) -> Any:
    """The parsed body; `BodyError` 422 saying what is wrong with it."""
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise BodyError(422, f"body is not UTF-8 (byte {error.start})") from error
    except json.JSONDecodeError as error:
        reason = f"body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        raise BodyError(422, reason) from error
    except RecursionError as error:
        raise BodyError(422, "body is not valid JSON here: nested too deeply") from error
    except ValueError as error:  # an integer of more than 4,300 digits
        raise BodyError(422, f"body is not valid JSON here: {_first_line(error)}") from error


def _as_json(scope: Scope, length: int) -> None:
    """Give `scope` the headers of a JSON body of `length` bytes (in place: the middleware
    around this one reads the route the app finds from the same scope)."""
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name not in (b"content-type", b"content-length")
    ]
    headers += [(b"content-type", JSON.encode()), (b"content-length", b"%d" % length)]
    scope["headers"] = headers


async def _answer(scope: Scope, send: Send, error: BodyError) -> None:
    detail: Any = error.reason
    if error.status == 422:
        detail = [{"type": "body_invalid", "loc": ["body"], "msg": error.reason}]
    headers = {"connection": "close"} if error.close else None
    response = JSONResponse(error_body(detail, error.reason), error.status, headers=headers)
    await response(scope, no_receive, send)


def _content_type(scope: Scope) -> tuple[str, str]:
    """The media type and the charset parameter (lower case, '' when absent)."""
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media_type, *parameters = bytes(value).decode("latin-1").lower().split(";")
            charsets = [p.split("=", 1)[1].strip(' "') for p in parameters if "charset=" in p]
            return media_type.strip(), charsets[0] if charsets else ""
    return "", ""


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def _is_json(media_type: str) -> bool:
    return media_type == JSON or media_type.endswith("+json")


def _first_line(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 (raw or %-escaped)"
    return str(error).splitlines()[0]


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
