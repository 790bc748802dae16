"""Request and response bodies of the HTTP API, with their limits.

`POST /translate` takes one of `text` (one string), `texts` (a list) or LibreTranslate's `q`
(a string or a list, answered with `translatedText` in the same shape). The limits written
here are hard upper bounds shown in the OpenAPI docs; the configurable, usually tighter ones
(`max_texts`, `max_text_chars`, `max_beam_size`) are checked by the route. `alternatives`
(LibreTranslate's name) asks for other candidate translations as well, from the beam.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

HARD_MAX_TEXTS = 10_000
HARD_MAX_CHARS = 1_000_000
ALLOWED_CONTROLS = frozenset("\t\n\r")

Text = Annotated[str, StringConstraints(max_length=HARD_MAX_CHARS)]


def text_problem(text: str) -> str | None:
    """Why `text` cannot be translated (lone surrogate, control character), or None."""
    for char in text:
        if "\ud800" <= char <= "\udfff":
            return f"contains an unpaired surrogate U+{ord(char):04X}, which is not valid Unicode"
        if unicodedata.category(char) == "Cc" and char not in ALLOWED_CONTROLS:
            return f"contains the control character U+{ord(char):04X}"
    return None


class TranslateRequest(BaseModel):
    """Exactly one of `text`, `texts` or `q`; the other fields are optional."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"text": "Ein Hund läuft."},
                {"texts": ["Ein Hund läuft.", "Zwei Katzen."]},
                {"q": "Ein Hund läuft.", "source": "de", "target": "en"},
                {"q": "Ein Hund läuft.", "source": "de", "target": "en", "alternatives": 2},
            ]
        },
    )

    text: Text | None = Field(None, description="One text to translate.")
    texts: list[Text] | None = Field(
        None, min_length=1, max_length=HARD_MAX_TEXTS, description="Texts, answered in order."
    )
    q: Text | list[Text] | None = Field(
        None, description="LibreTranslate-style input: a string or a list of strings."
    )
    source: str | None = Field(
        None, max_length=16, description="Source language code, or 'auto'; must match the model."
    )
    target: str | None = Field(
        None, max_length=16, description="Target language code; must match the model."
    )
    format: Literal["text", "html"] | None = Field(
        None,
        description="LibreTranslate: 'html' translates the text between tags and keeps the "
        "markup; 'text' (the default) translates everything.",
    )
    api_key: str | None = Field(None, max_length=512, description="LibreTranslate-style key.")
    beam_size: int | None = Field(
        None, ge=1, le=8, description="Beam width; 1 is greedy. Default: the server's setting."
    )
    alternatives: int = Field(
        0,
        ge=0,
        le=7,
        description="LibreTranslate: this many other translations per text as well, from a "
        "beam at least one wider (format 'text' only).",
    )

    @model_validator(mode="after")
    def _one_input(self) -> TranslateRequest:
        given = [name for name in ("text", "texts", "q") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'text', 'texts' or 'q'"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if isinstance(self.q, list) and not self.q:
            raise ValueError("'q' must not be an empty list")
        return self

    def input_field(self) -> tuple[str, bool]:
        """Which field holds the input, and whether it is a list."""
        if self.text is not None:
            return "text", False
        if self.texts is not None:
            return "texts", True
        return "q", isinstance(self.q, list)

    def libretranslate_answer(self, outputs: list[str]) -> str | list[str] | None:
        """`translatedText` in the shape of `q` (None when `q` was not used)."""
        if self.q is None:
            return None
        return outputs[0] if isinstance(self.q, str) else outputs

    def alternatives_answer(self, others: list[list[str]]) -> list[str] | list[list[str]] | None:
        """`alternatives` in the shape of the input: one list for `text` or a string `q`, a
        list per text otherwise (None when none were asked for)."""
        if not self.alternatives:
            return None
        return others if self.input_field()[1] else others[0]

    def inputs(self) -> list[str]:
        """The texts to translate, in order."""
        if self.text is not None:
            return [self.text]
        if self.texts is not None:
            return list(self.texts)
        return [self.q] if isinstance(self.q, str) else list(self.q or [])


class TranslateResponse(BaseModel):
    """Translations in input order, the model that made them and how long it took."""

    translations: list[str] = Field(description="One translation per input text, in order.")
    translation: str | None = Field(None, description="The translation, when `text` was sent.")
    translatedText: str | list[str] | None = Field(  # LibreTranslate spells it so
        None, description="LibreTranslate-compatible answer, when `q` was sent."
    )
    alternatives: list[str] | list[list[str]] | None = Field(
        None,
        description="Other translations, best first, when `alternatives` was asked for: a "
        "list for `text` or a string `q`, a list per text for `texts` or a list `q`.",
    )
    model: str = Field(description="Model id (checkpoint file name).")
    beam_size: int
    time_ms: float = Field(description="Server time for this request, queueing included.")


class ErrorResponse(BaseModel):
    """Every error: `detail` (a string, or FastAPI's list for 422) and a one-line `error`."""

    detail: str | list[dict[str, Any]]
    error: str


class ModelInfo(BaseModel):
    """What `Translator.info()` says, plus the model id."""

    model_config = ConfigDict(extra="allow")

    id: str
    src_lang: str | None
    tgt_lang: str | None
    parameters: int
    device: str
    config: dict[str, Any]
    metadata: dict[str, Any]


class Status(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok", "ready", "loading", "restarting"]
