"""LibreTranslate compatibility beyond the JSON fields: HTML-form bodies and the language list.

LibreTranslate's own clients (libretranslatepy, for one) POST `/translate` as an
`application/x-www-form-urlencoded` form with `q`, `source`, `target` and `api_key`, and ask
`GET /languages` what they can translate. `BodyFormatMiddleware` turns such a form into the
JSON object `/translate` reads, so one route, one validation and one OpenAPI schema serve both.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from serve.errors import error_body, no_receive, read_body, replay
from serve.schemas import HARD_MAX_TEXTS

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
LIST_FIELDS = frozenset({"texts"})
"""Form fields that are always lists. `q` is a list when repeated; others keep the last value."""

NAMES = {
    "ar": "Arabic",
    "cs": "Czech",
    "de": "German",
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "it": "Italian",
    "ja": "Japanese",
    "nl": "Dutch",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "zh": "Chinese",
}
"""English names of common ISO 639-1 codes; any other code is its own name."""


class Language(BaseModel):
    """One entry of `GET /languages`, in LibreTranslate's shape."""

    code: str
    name: str
    targets: list[str]


def languages(src_lang: str | None, tgt_lang: str | None) -> list[Language]:
    """The model's source language (with its one target) and its target language; empty when
    the checkpoint does not name its languages."""
    if not src_lang or not tgt_lang:
        return []
    return [
        Language(code=src_lang, name=NAMES.get(src_lang, src_lang), targets=[tgt_lang]),
        Language(code=tgt_lang, name=NAMES.get(tgt_lang, tgt_lang), targets=[]),
    ]


def form_to_json(body: bytes) -> bytes:
    """A urlencoded form as the JSON object `/translate` reads.

    Raises `ValueError` (with the reason) for a form that is not UTF-8 or has too many fields.
    """
    fields = parse_qs(
        body.decode("utf-8"),  # curl -d sends letters as they are, browsers %-escape them
        keep_blank_values=True,
        errors="strict",  # a %-escape that is not UTF-8 is an error, not U+FFFD
        max_num_fields=HARD_MAX_TEXTS + 16,
    )
    payload = {
        key: values if key in LIST_FIELDS or (key == "q" and len(values) > 1) else values[-1]
        for key, values in fields.items()
    }
    return json.dumps(payload).encode()


class BodyFormatMiddleware:
    """Lets JSON through, rewrites urlencoded forms as JSON, and answers any other POST body
    with 415. A "form" that starts with `{` is JSON sent with curl -d's default type."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        media_type = _media_type(scope)
        if scope["type"] != "http" or scope["method"] != "POST" or _is_json(media_type):
            await self.app(scope, receive, send)
            return
        if media_type not in (FORM, ""):
            reason = f"unsupported content type {media_type}: send {JSON} or {FORM}"
            await _answer(scope, send, 415, reason, reason)
            return
        body = await read_body(receive)
        if media_type == FORM and not body.lstrip().startswith((b"{", b"[")):
            try:
                body = form_to_json(body)
            except ValueError as error:  # UnicodeDecodeError is one
                reason = f"form body not readable: {_first_line(error)}"
                detail = [{"type": "form_invalid", "loc": ["body"], "msg": reason}]
                await _answer(scope, send, 422, detail, reason)
                return
        await self.app(_as_json(scope, len(body)), replay(body, receive), send)


def _as_json(scope: Scope, length: int) -> Scope:
    """`scope` with the headers of a JSON body of `length` bytes."""
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name not in (b"content-type", b"content-length")
    ]
    headers += [(b"content-type", JSON.encode()), (b"content-length", b"%d" % length)]
    return {**scope, "headers": headers}


async def _answer(scope: Scope, send: Send, status: int, detail: Any, reason: str) -> None:
    response = JSONResponse(error_body(detail, reason), status_code=status)
    await response(scope, no_receive, send)


def _is_json(media_type: str) -> bool:
    return media_type == JSON or media_type.endswith("+json")


def _media_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return bytes(value).decode("latin-1").split(";")[0].strip().lower()
    return ""


def _first_line(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 (raw or %-escaped)"
    return str(error).splitlines()[0]
