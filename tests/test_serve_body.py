"""Request bodies on a real server: a slow or stalled upload gets 408 and its connection is
closed; connections beyond the limit are refused at once; the checks of `serve.body` alone."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from conftest import running_server

from serve.body import BodyError, check_json
from serve.libretranslate import form_to_json
from serve.settings import Settings

pytestmark = pytest.mark.slow

HEAD = (
    b"POST /translate HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    b"Content-Length: 40\r\n\r\n"
)


def connect(url: str) -> socket.socket:
    parsed = urlparse(url)
    return socket.create_connection((parsed.hostname, parsed.port), timeout=10)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", 0)):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_a_stalled_upload_gets_408_and_the_connection_closes(tiny_checkpoint_path: Path) -> None:
    settings = Settings(model=[str(tiny_checkpoint_path)], device="cpu", body_timeout_s=0.5)
    with running_server(settings) as url, connect(url) as sock:
        started = time.monotonic()
        sock.sendall(HEAD + b'{"text": "eins')  # and then nothing
        status, headers, body = read_response(sock)
        seconds = time.monotonic() - started
        assert status == 408 and 0.4 < seconds < 3
        assert json.loads(body)["error"] == "request body not received within 0.5 s"
        assert headers["connection"] == "close"
        assert sock.recv(1024) == b""  # closed by the server


def test_a_slow_upload_is_bounded_by_the_whole_body_time(tiny_checkpoint_path: Path) -> None:
    settings = Settings(model=[str(tiny_checkpoint_path)], device="cpu", body_timeout_s=0.6)
    with running_server(settings) as url, connect(url) as sock:
        sock.sendall(HEAD)
        started = time.monotonic()
        try:
            for char in b'{"text": "eins zwei drei vier fuenf"} ':  # a byte every 0.1 s
                sock.sendall(bytes([char]))
                time.sleep(0.1)
        except OSError:
            pass  # the server gave up on us
        status, _, _ = read_response(sock)
        assert status == 408 and time.monotonic() - started < 5


def test_connections_beyond_the_limit_are_refused(tiny_checkpoint_path: Path) -> None:
    settings = Settings(model=[str(tiny_checkpoint_path)], device="cpu", max_connections=3)
    with running_server(settings) as url:
        held = [connect(url) for _ in range(3)]
        for sock in held:
            sock.sendall(HEAD[:30])  # half of the headers, then nothing
        time.sleep(0.3)
        with connect(url) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            status, _, _ = read_response(sock)
        for sock in held:
            sock.close()
        time.sleep(0.3)
        with connect(url) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
            after, _, _ = read_response(sock)
    assert (status, after) == (503, 200)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xc3", "body is not UTF-8 (byte 0)"),
        (b'{"a": 1,}', "body is not valid JSON: Expecting property name enclosed in double quotes"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (b"1" * 5000, "integer string conversion"),
    ],
)
def test_check_json_says_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(BodyError) as caught:
        check_json(body)
    assert caught.value.status == 422 and reason in caught.value.reason


def test_forms_become_the_json_the_routes_read() -> None:
    form = b"q=eins&q=zwei&source=de&target=&alternatives=2&beam_size=x&api_key=k"
    assert json.loads(form_to_json(form)) == {
        "q": ["eins", "zwei"],
        "source": "de",
        "alternatives": 2,
        "beam_size": "x",
        "api_key": "k",
    }
    assert json.loads(form_to_json(b"q=")) == {"q": ""}


def test_the_middleware_leaves_gets_alone() -> None:
    from serve.body import BodyMiddleware

    seen = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(scope["method"])

    middleware = BodyMiddleware(app, max_bytes=10, timeout_s=1)  # type: ignore[arg-type]
    asyncio.run(middleware({"type": "http", "method": "GET", "headers": []}, None, None))  # type: ignore[arg-type]
    assert seen == ["GET"]
