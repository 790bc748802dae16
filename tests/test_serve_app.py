"""The HTTP API: every route, and every bad input answered with a 4xx that says why."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import slow_down
from fastapi.testclient import TestClient

from seq2seq import CheckpointError, Translator
from seq2seq.cli import main as cli_main
from serve.app import create_app
from serve.settings import Settings

SENTENCE = "drei eins vier"


@pytest.fixture(scope="module")
def translator(tiny_checkpoint_path: Path) -> Translator:
    return Translator.load(tiny_checkpoint_path, device="cpu")


def make_client(path: Path, **overrides: Any) -> TestClient:
    settings = Settings(model=str(path), device="cpu", max_wait_ms=2, **overrides)
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


def test_ready_is_503_without_a_model(client: TestClient) -> None:
    app_state = client.app.state  # type: ignore[attr-defined]
    translator, app_state.translator = app_state.translator, None
    try:
        assert_error(client.get("/ready"), 503, "model not loaded")
        assert_error(client.post("/translate", json={"text": "eins"}), 503, "not loaded")
    finally:
        app_state.translator = translator


def test_model_info(client: TestClient) -> None:
    info = client.get("/model").json()
    assert (info["id"], info["src_lang"], info["tgt_lang"]) == ("tiny.pt", "de", "en")
    assert info["parameters"] > 0 and info["device"] == "cpu"
    assert info["config"]["hidden_size"] == 64 and info["metadata"] == {"step": 600}


def test_translate_one_text(client: TestClient, translator: Translator) -> None:
    body = client.post("/translate", json={"text": SENTENCE}).json()
    expected = translator.translate([SENTENCE], beam_size=1)
    assert body["translations"] == expected and body["translation"] == expected[0]
    assert body["model"] == "tiny.pt" and body["beam_size"] == 1 and body["time_ms"] > 0
    assert "translatedText" not in body


def test_translate_list_in_order(client: TestClient, translator: Translator) -> None:
    texts = ["eins", "zwei drei vier fünf", "", "neun acht"]
    body = client.post("/translate", json={"texts": texts, "beam_size": 3}).json()
    assert body["translations"] == translator.translate(texts, beam_size=3)
    assert body["translations"][2] == "" and "translation" not in body


def test_lines_and_sentences_are_translated_one_by_one(
    client: TestClient, translator: Translator, tiny_checkpoint_path: Path
) -> None:
    lines = ["eins zwei drei", "vier fünf", "sechs"]
    body = client.post("/translate", json={"text": "\n".join(lines)}).json()
    assert body["translation"] == "\n".join(translator.translate(lines, beam_size=1))
    with make_client(tiny_checkpoint_path, split_sentences=False) as whole:
        body = whole.post("/translate", json={"text": "\n".join(lines)}).json()
    expected = translator.translate(["\n".join(lines)], beam_size=1, split_sentences=False)
    assert body["translation"] == expected[0] and "\n" not in expected[0]


def test_libretranslate_fields(client: TestClient, translator: Translator) -> None:
    one = client.post(
        "/translate", json={"q": "eins zwei", "source": "de", "target": "en", "format": "text"}
    ).json()
    assert one["translatedText"] == translator.translate(["eins zwei"], beam_size=1)[0]
    many = client.post(
        "/translate", json={"q": ["eins", "zwei"], "source": "auto", "target": "en"}
    ).json()
    assert many["translatedText"] == translator.translate(["eins", "zwei"], beam_size=1)


def test_unusual_text_translates(client: TestClient) -> None:
    texts = ["eins 🐶 zwei", "drei Привет 你好 vier", "fünf\tsechs\nsieben", "ñ é ß"]
    body = client.post("/translate", json={"texts": texts}).json()
    assert len(body["translations"]) == 4
    assert all(isinstance(text, str) for text in body["translations"])


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
    limits = schema["components"]["schemas"]["TranslateRequest"]["properties"]["beam_size"]
    assert "/translate" in schema["paths"] and limits["anyOf"][0]["maximum"] == 8


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
        ({"text": "eins", "format": "pdf"}, "'text' or 'html'"),
    ],
)
def test_bad_input_is_422_with_a_reason(
    client: TestClient, payload: dict[str, Any], reason: str
) -> None:
    body = assert_error(client.post("/translate", json=payload), 422, reason)
    assert all("msg" in item for item in body["detail"])


def test_invalid_json_and_encodings(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    assert_error(client.post("/translate", content=b'{"text": ', headers=headers), 422, "JSON")
    assert_error(client.post("/translate", content=b"[1, 2]", headers=headers), 422, "")
    surrogate = b'{"text": "eins \\ud800 zwei"}'
    assert_error(
        client.post("/translate", content=surrogate, headers=headers),
        422,
        "text: Input should be a valid string",
    )
    response = client.post("/translate", content=b'{"text": "\xff\xfe eins"}', headers=headers)
    assert 400 <= response.status_code < 500 and response.json()["error"]


def test_int8_precision(tiny_checkpoint_path: Path) -> None:
    expected = Translator.load(tiny_checkpoint_path, device="cpu", precision="int8").translate(
        [SENTENCE], beam_size=1
    )
    with make_client(tiny_checkpoint_path, precision="int8") as client:
        assert client.post("/translate", json={"text": SENTENCE}).json()["translations"] == expected


def test_configured_beam_limit(tiny_checkpoint_path: Path) -> None:
    with make_client(tiny_checkpoint_path, max_beam_size=2) as client:
        response = client.post("/translate", json={"text": "eins", "beam_size": 3})
        assert_error(response, 422, "beam_size: beam_size must be at most 2")
        response = client.post("/translate", json={"text": "eins", "alternatives": 2})
        assert_error(response, 422, "alternatives: alternatives must be at most 1")
        answer = client.post("/translate", json={"text": "eins", "alternatives": 1}).json()
        assert answer["beam_size"] == 2 and len(answer["alternatives"]) <= 1


def test_unsupported_language_pair_is_400(client: TestClient) -> None:
    response = client.post("/translate", json={"q": "eins", "source": "fr", "target": "en"})
    assert_error(response, 400, "unsupported language pair fr->en: this model translates de->en")
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
        assert client.get("/health").status_code == 200  # probes need no key


def test_cors_off_by_default_and_configurable(
    client: TestClient, tiny_checkpoint_path: Path
) -> None:
    origin = {"origin": "http://example.org"}
    assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    with make_client(tiny_checkpoint_path, cors_origins=["http://example.org"]) as cors:
        allowed = cors.get("/health", headers=origin).headers
        assert allowed["access-control-allow-origin"] == "http://example.org"


# --- overload, timeout, startup ----------------------------------------------------------------


@pytest.mark.parametrize("batching", ["continuous", "static"])
def test_timeout_is_504(tiny_checkpoint_path: Path, batching: str) -> None:
    with make_client(tiny_checkpoint_path, request_timeout_s=0.1, batching=batching) as client:
        slow_down(client.app.state.translator, 0.5)  # type: ignore[attr-defined]
        response = client.post("/translate", json={"text": "eins"})
        assert_error(response, 504, "translation took longer than 0.1 s")


@pytest.mark.parametrize("batching", ["continuous", "static"])
def test_full_queue_is_503_with_retry_after(tiny_checkpoint_path: Path, batching: str) -> None:
    with make_client(
        tiny_checkpoint_path, max_queue_size=1, max_batch_size=1, retry_after_s=3, batching=batching
    ) as client:
        slow_down(client.app.state.translator, 0.1)  # type: ignore[attr-defined]
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


@pytest.mark.parametrize("content", [None, b"not a checkpoint"])
def test_cli_bad_model_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None
) -> None:
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    assert cli_main(["serve", "--model", str(path), "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq serve: error:") and str(path) in error
    assert error.count("\n") == 1 and "Traceback" not in error


def test_error_bodies_are_json(client: TestClient) -> None:
    response = client.post("/translate", content=b"{}", headers={"content-type": "text/plain"})
    assert response.status_code == 415
    assert json.loads(response.text)["error"]
