"""The HTTP API of a one-model server: every route, and every bad input answered with a 4xx
that says why."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import served_translator, slow_down
from fastapi.testclient import TestClient

from seq2seq import CheckpointError, SearchOptions, Translator
from serve.app import create_app
from serve.settings import Settings

SENTENCE = "drei eins vier"
JSON = {"content-type": "application/json"}
GREEDY = SearchOptions(beam_size=1)


@pytest.fixture(scope="module")
def translator(tiny_checkpoint_path: Path) -> Translator:
    return Translator.load(tiny_checkpoint_path, device="cpu")


def make_client(path: Path, **overrides: Any) -> TestClient:
    settings = Settings(model=[str(path)], device="cpu", max_wait_ms=2, **overrides)
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def client(tiny_checkpoint_path: Path) -> Iterator[TestClient]:
    with make_client(tiny_checkpoint_path, max_texts=4, max_text_chars=200) as client:
        yield client


def assert_error(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    """The status, and a one-line `error` that contains `reason`."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert reason in body["error"], body
    assert "\n" not in body["error"]
    return body


# --- routes ----------------------------------------------------------------------------------


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}


def test_ready_is_503_without_models(client: TestClient) -> None:
    app_state = client.app.state  # type: ignore[attr-defined]
    registry, app_state.registry = app_state.registry, None
    try:
        assert_error(client.get("/ready"), 503, "models not loaded")
        assert_error(client.post("/translate", json={"text": "eins"}), 503, "not loaded yet")
    finally:
        app_state.registry = registry


def test_model_info(client: TestClient, translator: Translator) -> None:
    info = client.get("/model").json()
    assert (info["id"], info["src_lang"], info["tgt_lang"]) == ("tiny.pt", "de", "en")
    assert info["parameters"] == translator.model.num_parameters() and info["device"] == "cpu"
    assert info["config"]["hidden_size"] == 64 and info["metadata"] == {"step": 600}
    (listed,) = client.get("/models").json()
    assert (listed["source"], listed["target"], listed["state"]) == ("de", "en", "loaded")
    assert listed["parameters"] == info["parameters"] and listed["precision"] == "fp32"


def test_translate_one_text(client: TestClient, translator: Translator) -> None:
    body = client.post("/translate", json={"text": SENTENCE}).json()
    expected = translator.translate([SENTENCE], SearchOptions(beam_size=1))
    assert body["translations"] == expected and body["translation"] == expected[0]
    assert body["model"] == "tiny.pt" and body["beam_size"] == 1 and body["time_ms"] > 0
    assert "translatedText" not in body


def test_translate_list_in_order(client: TestClient, translator: Translator) -> None:
    texts = ["eins", "zwei drei vier fünf", "", "neun acht"]
    body = client.post("/translate", json={"texts": texts, "beam_size": 3}).json()
    assert body["translations"] == translator.translate(texts, SearchOptions(beam_size=3))
    assert body["translations"][2] == "" and "translation" not in body


def test_lines_and_sentences_are_translated_one_by_one(
    client: TestClient, translator: Translator, tiny_checkpoint_path: Path
) -> None:
    lines = ["eins zwei drei", "vier fünf", "sechs"]
    body = client.post("/translate", json={"text": "\n".join(lines)}).json()
    assert body["translation"] == "\n".join(translator.translate(lines, SearchOptions(beam_size=1)))
    with make_client(tiny_checkpoint_path, split_sentences=False) as whole:
        body = whole.post("/translate", json={"text": "\n".join(lines)}).json()
    expected = translator.translate(
        ["\n".join(lines)], SearchOptions(beam_size=1), split_sentences=False
    )
    assert body["translation"] == expected[0] and "\n" not in expected[0]


def test_libretranslate_fields(client: TestClient, translator: Translator) -> None:
    one = client.post(
        "/translate", json={"q": "eins zwei", "source": "de", "target": "en", "format": "text"}
    ).json()
    assert (
        one["translatedText"] == translator.translate(["eins zwei"], SearchOptions(beam_size=1))[0]
    )
    many = client.post(
        "/translate", json={"q": ["eins", "zwei"], "source": "auto", "target": "en"}
    ).json()
    assert many["translatedText"] == translator.translate(
        ["eins", "zwei"], SearchOptions(beam_size=1)
    )


def test_known_and_unusual_text_translates(client: TestClient, translator: Translator) -> None:
    assert client.post("/translate", json={"text": SENTENCE}).json()["translation"] == (
        "three one four"
    )
    texts = ["eins 🐶 zwei Привет 你好", "fünf\tsechs\nsieben", "ñ é ß", "!?…"]
    body = client.post("/translate", json={"texts": texts}).json()
    assert body["translations"] == translator.translate(texts, GREEDY)
    assert body["translations"][1].count("\n") == 1 and body["translations"][3] == "!?…"


@pytest.mark.parametrize("inference", ["thread", "process"])
def test_html_without_text_is_answered_at_once(tiny_checkpoint_path: Path, inference: str) -> None:
    texts = ["", "   ", "<b></b>", "<p> <br/> </p>", "<!-- nur ein Kommentar -->"]
    with make_client(
        tiny_checkpoint_path, inference=inference, threads=1, request_timeout_s=5
    ) as client:
        response = client.post("/translate", json={"texts": texts, "format": "html"})
        assert response.status_code == 200, response.text
        assert response.json()["translations"] == texts  # markup and spaces as written
        assert response.json()["time_ms"] < 1000


def test_malformed_html_and_punctuation_come_back_as_written(client: TestClient) -> None:
    markup = ['<a href="x>eins</a>', "<![CDATA[eins]]>", "<SCRIPT>x</SCRIPT> zwei"]
    body = client.post("/translate", json={"texts": markup, "format": "html"}).json()
    assert body["translations"] == [markup[0], markup[1], "<SCRIPT>x</SCRIPT> two"]
    body = client.post("/translate", json={"text": "!?.,;:…—«»"}).json()
    assert body["translation"] == "!?.,;:…—«»"


def test_metrics(client: TestClient) -> None:
    client.post("/translate", json={"text": "eins"})
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'seq2seq_http_requests_total{method="POST",route="/translate",status="200"}' in text
    assert 'route="unmatched"' in text and 'route="/nowhere"' not in text
    for name in (
        "seq2seq_http_request_duration_seconds_bucket",
        "seq2seq_batch_size_sentences",
        "seq2seq_queue_depth",
        "seq2seq_source_tokens_total",
    ):
        assert name in text


def test_page_and_docs(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<textarea" in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["TranslateRequest"]
    assert "/translate" in schema["paths"] and "/detect" in schema["paths"]
    assert request["properties"]["beam_size"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 8,
        "description": "Beam width; 1 is greedy. Default: the server's setting.",
        "title": "Beam Size",
    }
    assert request["oneOf"] == [{"required": [name]} for name in ("text", "texts", "q")]
    assert request["properties"]["source"]["pattern"].startswith("^(auto|")


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"texts": []}, "at least 1 item"),
        ({"texts": "eins"}, "valid list"),
        ({"texts": ["eins", 2]}, "valid string"),
        ({"text": 5}, "valid string"),
        ({}, "exactly one of 'text', 'texts' or 'q'"),
        ({"text": "eins", "texts": ["zwei"]}, "(got text, texts)"),
        ({"q": []}, "must not be an empty list"),
        ({"texts": ["eins"] * 5}, "at most 4 texts per request, got 5"),
        ({"text": "eins " * 50}, "text has 250 characters; at most 200"),
        ({"texts": ["eins", "x" * 201]}, "texts.1: text has 201 characters"),
        ({"text": "eins", "beam_size": 0}, "greater than or equal to 1"),
        ({"text": "eins", "beam_size": 9}, "less than or equal to 8"),
        ({"text": "eins", "beam_size": "wide"}, "valid integer"),
        ({"text": "eins\u0000zwei"}, "control character U+0000"),
        ({"texts": ["eins", "\u0007"]}, "texts.1: text contains the control character U+0007"),
        ({"text": "eins", "format": "pdf"}, "format: Input should be 'text' or 'html'"),
        ({"text": "eins", "beam_size": "5"}, "beam_size: Input should be a valid integer"),
        ({"text": "eins", "beam_size": 5.5}, "beam_size: Input should be a valid integer"),
        ({"text": "eins", "beam_size": True}, "beam_size: Input should be a valid integer"),
        ({"text": "eins", "alternatives": False}, "alternatives: Input should be a valid integer"),
        ({"text": None, "q": "eins"}, "'text' must not be null"),
        ({"text": "eins", "source": "EN"}, "source: String should match pattern"),
        ({"text": "eins", "target": "auto"}, "target: String should match pattern"),
    ],
)
def test_bad_input_is_422_with_a_reason(
    client: TestClient, payload: dict[str, Any], reason: str
) -> None:
    body = assert_error(client.post("/translate", json=payload), 422, reason)
    assert all("msg" in item for item in body["detail"])
    assert "(and " not in body["error"]  # one reason, not one per member of a union type


@pytest.mark.parametrize(
    ("content", "headers", "reason"),
    [
        (b'{"text": ', {}, "body is not valid JSON: Expecting value at line 1 column 10"),
        (b'{"text": "\xff\xfe eins"}', {}, "body is not UTF-8 (byte 10)"),
        (b"[" * 100_000, {}, "nested too deeply"),
        (b'{"text": "a", "beam_size": ' + b"9" * 5000 + b"}", {}, "integer string conversion"),
        ('{"text": "Tür"}'.encode("latin-1"), {"charset": "latin-1"}, "must be UTF-8, not"),
        (b"", {}, "body is not valid JSON: Expecting value at line 1 column 1"),
        (b"[1, 2]", {}, "Input should be a valid dictionary"),
        (b'{"text": "eins \\ud800 zwei"}', {}, "text: Input should be a valid string"),
    ],
)
def test_invalid_json_is_422_saying_what_is_wrong(
    client: TestClient, content: bytes, headers: dict[str, str], reason: str
) -> None:
    content_type = "application/json" + "".join(f"; {k}={v}" for k, v in headers.items())
    response = client.post("/translate", content=content, headers={"content-type": content_type})
    assert_error(response, 422, reason)


def test_utf8_charset_is_fine(client: TestClient) -> None:
    headers = {"content-type": "application/json; charset=UTF-8"}
    response = client.post("/translate", content=b'{"text": "eins"}', headers=headers)
    assert response.json()["translation"] == "one"


def test_int8_precision(tiny_checkpoint_path: Path) -> None:
    int8 = Translator.load(tiny_checkpoint_path, device="cpu", precision="int8")
    expected = int8.translate([SENTENCE], GREEDY)
    with make_client(tiny_checkpoint_path, precision="int8") as client:
        assert client.post("/translate", json={"text": SENTENCE}).json()["translations"] == expected


def test_configured_beam_limit(tiny_checkpoint_path: Path) -> None:
    with make_client(tiny_checkpoint_path, max_beam_size=2) as client:
        response = client.post("/translate", json={"text": "eins", "beam_size": 3})
        assert_error(response, 422, "beam_size: beam_size must be at most 2")
        response = client.post("/translate", json={"text": "eins", "alternatives": 2})
        assert_error(response, 422, "alternatives: alternatives must be at most 1")
        answer = client.post("/translate", json={"text": "eins", "alternatives": 1}).json()
        assert answer["beam_size"] == 2 and len(answer["alternatives"]) == 1
        assert answer["alternatives"][0] not in ("", answer["translation"])


def test_unsupported_language_pair_is_400(client: TestClient) -> None:
    response = client.post("/translate", json={"q": "eins", "source": "fr", "target": "en"})
    assert_error(response, 400, "unsupported language pair fr->en: this server translates de->en")
    response = client.post("/translate", json={"q": "eins", "source": "de", "target": "cs"})
    assert_error(response, 400, "de->cs")


def test_oversized_body_is_413(tiny_checkpoint_path: Path) -> None:
    with make_client(tiny_checkpoint_path, max_body_bytes=1000) as client:
        declared = client.post("/translate", json={"text": "eins " * 400})
        assert_error(declared, 413, "request body larger than 1000 bytes")

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
            yield b'{"text": "'
            yield b"eins " * 400
            yield b'"}'

        streamed = client.post(
            "/translate", content=chunks(), headers={"content-type": "application/json"}
        )
        assert "content-length" not in streamed.request.headers
        assert_error(streamed, 413, "request body larger than 1000 bytes")
        assert client.post("/translate", json={"text": "eins"}).status_code == 200


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_error(client.get("/nowhere"), 404, "Not Found")
    assert_error(client.get("/translate"), 405, "Method Not Allowed")


def test_api_key(tiny_checkpoint_path: Path) -> None:
    with make_client(tiny_checkpoint_path, api_key="sesame") as client:
        assert_error(client.post("/translate", json={"text": "eins"}), 401, "API key required")
        wrong = client.post("/translate", json={"text": "eins"}, headers={"x-api-key": "open"})
        assert_error(wrong, 403, "API key not valid")
        for headers in ({"x-api-key": "sesame"}, {"authorization": "Bearer sesame"}):
            assert client.post("/translate", json={"text": "eins"}, headers=headers).is_success
        assert client.post("/translate", json={"text": "eins", "api_key": "sesame"}).is_success
        form = client.post("/translate", data={"q": "eins", "api_key": "sesame"})
        assert form.json()["translatedText"] == "one"
        assert_error(client.post("/detect", json={"q": "eins"}), 401, "API key required")
        assert client.get("/health").status_code == 200  # probes need no key


def test_an_api_key_that_is_not_unicode_is_403(tiny_checkpoint_path: Path) -> None:
    with make_client(tiny_checkpoint_path, api_key="sesame") as client:
        content = b'{"q": "eins", "api_key": "\\ud800"}'
        response = client.post("/translate", content=content, headers=JSON)
        assert_error(response, 403, "API key not valid")
        response = client.post("/translate", json={"q": "eins"}, headers={"x-api-key": b"\xe9"})
        assert_error(response, 403, "API key not valid")


def test_cors_off_by_default_and_configurable(
    client: TestClient, tiny_checkpoint_path: Path
) -> None:
    origin = {"origin": "http://example.org"}
    assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    with make_client(tiny_checkpoint_path, cors_origins=["http://example.org"]) as cors:
        allowed = cors.get("/health", headers=origin).headers
        assert allowed["access-control-allow-origin"] == "http://example.org"


# --- overload, timeout, startup ----------------------------------------------------------------


def test_timeout_is_504_and_the_work_stops(tiny_checkpoint_path: Path) -> None:
    with make_client(tiny_checkpoint_path, request_timeout_s=0.3, max_batch_size=64) as client:
        slow_down(served_translator(client.app), 0.05)
        texts = ["eins zwei drei vier fünf sechs"] * 64
        big = client.post("/translate", json={"texts": texts, "beam_size": 8, "alternatives": 7})
        assert_error(big, 504, "translation took longer than 0.3 s")
        small = client.post("/translate", json={"text": "eins"})  # 3 steps of 0.05 s
        assert small.status_code == 200, small.text  # not behind 20 more steps of the big one


def test_full_queue_is_503_with_retry_after(tiny_checkpoint_path: Path) -> None:
    with make_client(
        tiny_checkpoint_path, max_queue_size=1, max_batch_size=1, retry_after_s=3
    ) as client:
        slow_down(served_translator(client.app), 0.1)
        barrier = threading.Barrier(6)

        def send(_: int) -> httpx.Response:
            barrier.wait()
            return client.post("/translate", json={"text": "eins"})

        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(send, range(6)))
        busy = [r for r in responses if r.status_code == 503]
        assert busy and any(r.status_code == 200 for r in responses)
        assert all(r.headers["retry-after"] == "3" for r in busy)
        assert_error(busy[0], 503, "server busy")


def test_missing_model_stops_startup(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"missing\.pt"), make_client(tmp_path / "missing.pt"):
        pass


def test_error_bodies_are_json(client: TestClient) -> None:
    response = client.post("/translate", content=b"{}", headers={"content-type": "text/plain"})
    assert_error(response, 415, "unsupported content type text/plain")
    assert json.loads(response.text)["detail"]
