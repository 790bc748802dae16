"""LibreTranslate compatibility beyond the JSON fields: form bodies and language names.

LibreTranslate's own clients (libretranslatepy, for one) POST `/translate` and `/detect` as
`application/x-www-form-urlencoded` forms with `q`, `source`, `target` and `api_key`, and ask
`GET /languages` what they can translate. `form_to_json` turns such a form into the JSON
object the routes read (`serve.body` does it for every request).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs

from pydantic import BaseModel

from serve.schemas import HARD_MAX_TEXTS

LIST_FIELDS = frozenset({"texts"})
"""Form fields that are always lists. `q` is a list when repeated; others keep the last value."""
INTEGER_FIELDS = frozenset({"beam_size", "alternatives"})
"""Form fields read as integers when they are written as one (a form has only strings)."""
TEXT_FIELDS = frozenset({"text", "texts", "q"})
INTEGER = re.compile(r"^-?[0-9]{1,9}$")

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


def language(code: str, targets: list[str]) -> Language:
    """One entry of the language list."""
    return Language(code=code, name=NAMES.get(code, code), targets=targets)


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
    payload: dict[str, Any] = {
        key: values if key in LIST_FIELDS or (key == "q" and len(values) > 1) else values[-1]
        for key, values in fields.items()
    }
    for key in [key for key, value in payload.items() if value == "" and key not in TEXT_FIELDS]:
        del payload[key]  # a blank form field is one not given
    for key in INTEGER_FIELDS & payload.keys():
        if isinstance(payload[key], str) and INTEGER.match(payload[key]):
            payload[key] = int(payload[key])
    return json.dumps(payload).encode()
