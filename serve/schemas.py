"""Request and response bodies of the HTTP API: the schema says exactly what is accepted.

`POST /translate` takes exactly one of `text` (one string), `texts` (a list) or
LibreTranslate's `q` (a string or a list, answered with `translatedText` in the same shape);
the OpenAPI schema says so with a `oneOf`. Types are strict (no `"5"`, `5.0` or `true` for an
integer) and no field may be null. The limits written here are hard upper bounds; the
configurable, usually tighter ones (`max_texts`, `max_text_chars`, `max_beam_size`) are
checked by the route.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

HARD_MAX_TEXTS = 10_000
HARD_MAX_CHARS = 1_000_000
ALLOWED_CONTROLS = frozenset("\t\n\r")
INPUTS = ("text", "texts", "q")
CONTROL = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f"
TEXT_PATTERN = f"^[^{CONTROL}]*$"
"""Text without control characters other than tab and line breaks (see `text_problem`)."""
WORDS_PATTERN = f"^[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*$"
"""The same, with something besides whitespace: what /detect and /inspect need."""

LANGUAGE = r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*"
"""A language code: ISO 639 letters, optionally with subtags (`pt-BR`)."""
Text = Annotated[str, StringConstraints(max_length=HARD_MAX_CHARS)]
Texts = Annotated[list[Text], Field(min_length=1, max_length=HARD_MAX_TEXTS)]
Source = Annotated[str, StringConstraints(max_length=16, pattern=f"^(auto|{LANGUAGE})$")]
Target = Annotated[str, StringConstraints(max_length=16, pattern=f"^{LANGUAGE}$")]
Key = Annotated[str, StringConstraints(max_length=512)]


def _whole_number(value: Any) -> Any:
    """JSON has one kind of number: 5.0 is the integer 5 (as JSON Schema's `integer` says);
    5.5, "5" and true are still not integers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


Whole = BeforeValidator(_whole_number)
Beam = Annotated[int, Field(ge=1, le=8), Whole]
Alternatives = Annotated[int, Field(ge=0, le=7), Whole]
TopK = Annotated[int, Field(ge=1, le=10), Whole]
Top = Annotated[int, Field(ge=1, le=50), Whole]
Decimals = Annotated[int, Field(ge=0, le=2), Whole]


def text_problem(text: str) -> str | None:
    """Why `text` cannot be translated (lone surrogate, control character), or None."""
    for char in text:
        if "\ud800" <= char <= "\udfff":
            return f"contains an unpaired surrogate U+{ord(char):04X}, which is not valid Unicode"
        if unicodedata.category(char) == "Cc" and char not in ALLOWED_CONTROLS:
            return f"contains the control character U+{ord(char):04X}"
    return None


class Strict(BaseModel):
    """A request body: strict types, unknown fields ignored, no field null."""

    model_config = ConfigDict(strict=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in cls.model_fields:
                if name in data and data[name] is None:
                    raise ValueError(f"'{name}' must not be null (leave it out instead)")
        return data


def _one_input(schema: dict[str, Any]) -> None:
    """Exactly one input field, and no `"default": null` for fields that cannot be null."""
    schema["oneOf"] = [{"required": [name]} for name in INPUTS]
    for field in schema["properties"].values():
        if field.get("default", 0) is None:
            del field["default"]


class TranslateRequest(Strict):
    """Exactly one of `text`, `texts` or `q`; the other fields are optional."""

    model_config = ConfigDict(
        json_schema_extra=_one_input,
        title="TranslateRequest",
    )

    text: Text | SkipJsonSchema[None] = Field(None, description="One text to translate.")
    texts: Texts | SkipJsonSchema[None] = Field(None, description="Texts, answered in order.")
    q: Text | list[Text] | SkipJsonSchema[None] = Field(
        None, description="LibreTranslate-style input: a string or a list of strings."
    )
    source: Source | SkipJsonSchema[None] = Field(
        None,
        description="Source language code, or 'auto' to detect it (also when left out and "
        "the server reads several languages).",
    )
    target: Target | SkipJsonSchema[None] = Field(
        None,
        description="Target language code; needed when the server translates into several.",
    )
    format: Literal["text", "html"] | SkipJsonSchema[None] = Field(
        None,
        description="LibreTranslate: 'html' translates the text between tags and keeps the "
        "markup; 'text' (the default) translates everything.",
    )
    api_key: Key | SkipJsonSchema[None] = Field(None, description="LibreTranslate-style key.")
    beam_size: Beam | SkipJsonSchema[None] = Field(
        None, description="Beam width; 1 is greedy. Default: the server's setting."
    )
    alternatives: Alternatives = Field(
        0,
        ge=0,
        le=7,
        description="LibreTranslate: this many other translations per text as well, from a "
        "beam at least one wider (for HTML too: each with the markup as written).",
    )

    @model_validator(mode="after")
    def _exactly_one_input(self) -> TranslateRequest:
        given = [name for name in INPUTS if getattr(self, name) is not None]
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

    def inputs(self) -> list[str]:
        """The texts to translate, in order."""
        if self.text is not None:
            return [self.text]
        if self.texts is not None:
            return list(self.texts)
        return [self.q] if isinstance(self.q, str) else list(self.q or [])

    def shaped(self, values: list[Any]) -> Any:
        """One value per text in the shape of the input: the value alone for `text` or a
        string `q`, the list otherwise."""
        return values if self.input_field()[1] else values[0]


class DetectedLanguage(BaseModel):
    """A language and the detector's confidence in it, 0 to 100 (LibreTranslate's shape)."""

    language: str
    confidence: float


class TranslateResponse(BaseModel):
    """Translations in input order, the models that made them and how long it took."""

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
    detectedLanguage: DetectedLanguage | list[DetectedLanguage] | None = Field(
        None, description="The source language found, when it was detected."
    )
    pivot: str | None = Field(
        None, description="The language translated through, when no model did it directly."
    )
    model: str = Field(description="The checkpoint(s) that translated, in order, joined by ' > '.")
    beam_size: int
    time_ms: float = Field(description="Server time for this request, queueing included.")


class DetectRequest(Strict):
    """LibreTranslate's `POST /detect`: one text."""

    q: Text = Field(description="The text whose language is wanted.")
    api_key: Key | SkipJsonSchema[None] = Field(None, description="LibreTranslate-style key.")


class InspectRequest(Strict):
    """One sentence to look inside the model with, and what to show."""

    text: Text = Field(description="The sentence (read whole, at most 64 source subwords).")
    source: Source | SkipJsonSchema[None] = Field(None, description="As for /translate.")
    target: Target | SkipJsonSchema[None] = Field(
        None, description="As for /translate; the pair needs a model of its own (no pivot)."
    )
    beam_size: Beam | SkipJsonSchema[None] = Field(
        None, description="1 (default) reads the greedy path, more the beam's best."
    )
    top_k: TopK = Field(5, description="Next tokens listed per decoder step.")
    by: Annotated[
        str, StringConstraints(max_length=64, pattern=r"^(position|remaining|inside|token:\S+)$")
    ] = Field(
        "position",
        description="Rank units by how their cell follows this: position, remaining, inside, "
        "or token:PIECE.",
    )
    top: Top = Field(10, description="Units listed.")
    decimals: Decimals = Field(
        1, description="Values are integers in units of 10**-decimals (`scale` says which)."
    )


def configured(
    schema: dict[str, Any], limits: dict[str, int], *, sources: list[str], targets: list[str]
) -> dict[str, Any]:
    """The OpenAPI `schema` with this server's own limits (`max_texts`, `max_text_chars`,
    `max_beam_size`), its languages, and the characters a text may not hold: a client or a
    fuzzer generating from it sends what the server accepts."""
    bodies = schema["components"]["schemas"]
    text = {"type": "string", "maxLength": limits["max_text_chars"], "pattern": TEXT_PATTERN}
    texts = {"type": "array", "items": text, "minItems": 1, "maxItems": limits["max_texts"]}
    translate = bodies["TranslateRequest"]["properties"]
    translate["text"].update(text)
    translate["texts"].update(texts)
    translate["q"]["anyOf"] = [text, texts]
    for body in (translate, bodies["InspectRequest"]["properties"]):
        body["beam_size"]["maximum"] = limits["max_beam_size"]
        body["source"]["enum"] = ["auto", *sources]
        body["target"]["enum"] = targets
    translate["alternatives"]["maximum"] = limits["max_beam_size"] - 1
    words = {**text, "pattern": WORDS_PATTERN, "minLength": 1}
    bodies["InspectRequest"]["properties"]["text"].update(words)
    bodies["DetectRequest"]["properties"]["q"].update(words)
    return schema


class ErrorResponse(BaseModel):
    """Every error: `detail` (a string, or FastAPI's list for 422) and a one-line `error`."""

    detail: str | list[dict[str, Any]]
    error: str


class ModelInfo(BaseModel):
    """One model of `GET /models`: its pair, file, size, where it decodes, its state."""

    model_config = ConfigDict(extra="allow")

    id: str
    source: str
    target: str
    file: str
    parameters: int
    device: str | None = None
    precision: str | None = None
    shortlist: bool | None = Field(None, description="Whether it decodes over a shortlist.")
    state: Literal["unloaded", "loading", "loaded", "failed"]
    error: str | None = None
    val_bleu: float | None = Field(None, description="Validation BLEU stored in the checkpoint.")


class Status(BaseModel):
    """Liveness or readiness; `unavailable` names models that cannot serve now."""

    status: Literal["ok", "ready", "loading", "restarting"]
    unavailable: list[str] | None = None
