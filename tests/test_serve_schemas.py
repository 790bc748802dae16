"""Request bodies: one input field, its shape echoed in the answer, text that cannot be read."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from serve.schemas import TranslateRequest, text_problem


@pytest.mark.parametrize(
    ("body", "texts", "field", "is_list"),
    [
        ({"text": "eins"}, ["eins"], "text", False),
        ({"texts": ["eins", "zwei"]}, ["eins", "zwei"], "texts", True),
        ({"q": "eins"}, ["eins"], "q", False),
        ({"q": ["eins", "zwei"]}, ["eins", "zwei"], "q", True),
    ],
)
def test_each_input_field_gives_its_texts_in_order(
    body: dict[str, object], texts: list[str], field: str, is_list: bool
) -> None:
    request = TranslateRequest.model_validate(body)
    assert request.inputs() == texts and request.input_field() == (field, is_list)


def test_answers_take_the_shape_of_the_input() -> None:
    one, listed = TranslateRequest(q="eins"), TranslateRequest(q=["eins", "zwei"])
    assert one.shaped(["one"]) == "one"
    assert listed.shaped(["one", "two"]) == ["one", "two"]
    assert TranslateRequest(text="eins").shaped([["won", "on"]]) == ["won", "on"]
    assert TranslateRequest(texts=["a", "b"]).shaped([["won"], ["too"]]) == [["won"], ["too"]]


@pytest.mark.parametrize(
    "body",
    [
        {"text": "a", "beam_size": "5"},
        {"text": "a", "beam_size": 5.5},
        {"text": "a", "beam_size": True},
        {"text": "a", "alternatives": False},
        {"text": None, "q": "a"},
        {"text": "a", "source": None},
        {"text": "a", "source": "German"},
        {"text": "a", "target": "auto"},
    ],
)
def test_types_are_strict_and_nothing_is_null(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TranslateRequest.model_validate(body)


def test_the_schema_says_exactly_one_input_and_no_nulls() -> None:
    schema = TranslateRequest.model_json_schema()
    assert schema["oneOf"] == [{"required": ["text"]}, {"required": ["texts"]}, {"required": ["q"]}]
    for name, field in schema["properties"].items():
        assert ("null" not in str(field.get("type")) and "anyOf" not in field) or name == "q"
        assert field.get("default") is None or name == "alternatives"
    assert schema["properties"]["texts"]["minItems"] == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "give exactly one of 'text', 'texts' or 'q'"),
        ({"text": "a", "q": "b"}, "(got text, q)"),
        ({"q": []}, "'q' must not be an empty list"),
        ({"texts": []}, "at least 1 item"),
        ({"text": "a", "alternatives": 8}, "less than or equal to 7"),
    ],
)
def test_malformed_requests_say_why(body: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)):
        TranslateRequest.model_validate(body)


def test_text_problems_name_the_character() -> None:
    assert text_problem("Ein Hund läuft. 🐕 Собака\tbellt.\r\n") is None
    assert text_problem("a\x00b") == "contains the control character U+0000"
    assert text_problem("a\x1bb") == "contains the control character U+001B"
    assert "unpaired surrogate U+D800" in (text_problem("a\ud800") or "")
