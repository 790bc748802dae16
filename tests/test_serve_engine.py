"""Batching and decoding in a child process: same answers, abandoned requests are never decoded,
a crash fails only what the child held and a new child takes over, shutdown leaves nothing."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import slow_down
from fastapi.testclient import TestClient
from pydantic import ValidationError

from seq2seq import Translator
from serve.app import create_app
from serve.engine import InferencePool, InferenceProcess, InferenceProcessError
from serve.settings import Settings
from serve.worker import serve_pipe

SENTENCES = ["drei eins vier", "null", "neun acht sieben sechs"]


@pytest.fixture(scope="module")
def translator(tiny_checkpoint_path: Path) -> Translator:
    return Translator.load(tiny_checkpoint_path, device="cpu")


def settings(path: Path, **overrides: Any) -> Settings:
    return Settings(
        model=str(path), device="cpu", max_wait_ms=2, threads=1, inference="process", **overrides
    )


@pytest.fixture(scope="module")
def client(tiny_checkpoint_path: Path) -> Iterator[TestClient]:
    app = create_app(settings(tiny_checkpoint_path, request_timeout_s=1))
    with TestClient(app) as client:
        yield client


def pool(client: TestClient) -> InferencePool:
    engine: InferencePool = client.app.state.batcher  # type: ignore[attr-defined]
    return engine


def child(client: TestClient) -> InferenceProcess:
    return pool(client).processes[0]


def batches(client: TestClient) -> float:
    """Translate calls (or decoder steps) the child has reported to /metrics."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("seq2seq_batch_size_sentences_count"):
            return float(line.split()[1])
    return 0.0


def post(client: TestClient, **body: Any) -> Any:
    response = client.post("/translate", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_child_translates_like_the_translator(
    tiny_checkpoint_path: Path, translator: Translator, batching: str
) -> None:
    with TestClient(create_app(settings(tiny_checkpoint_path, batching=batching))) as client:
        for beam_size in (1, 3):
            expected = translator.translate(SENTENCES, beam_size=beam_size)
            assert post(client, texts=SENTENCES, beam_size=beam_size)["translations"] == expected
        ranked = post(client, text=SENTENCES[0], alternatives=2)  # candidates cross the pipe
        assert ranked["translation"] == translator.translate(SENTENCES[:1], beam_size=3)[0]
        assert ranked["translation"] not in ranked["alternatives"]
        assert client.get("/model").json()["device"] == "cpu"
        assert batches(client) >= 2  # the child's batch stats reach the server's metrics
        server_side = client.app.state.translator  # type: ignore[attr-defined]
        assert not isinstance(server_side, Translator)  # tokenizers only: no weights here
        pid = child(client).pid
        assert pid is not None and _running(pid)
    assert not _running(pid)  # shutting the server down stops the child


def test_the_child_never_decodes_a_request_cancelled_while_it_waits(
    tiny_checkpoint_path: Path,
) -> None:
    translator = Translator.load(tiny_checkpoint_path, device="cpu")
    slow_down(translator, 0.05)
    ours, theirs = multiprocessing.Pipe()
    child_loop = threading.Thread(
        target=asyncio.run, args=(serve_pipe(theirs, settings(tiny_checkpoint_path), translator),)
    )
    child_loop.start()
    assert ours.recv()[0] == "ready"
    ids = translator.encode(SENTENCES)
    ours.send(("job", 0, ids[:1], len(ids[0]), 1, 1))  # beam 1, one candidate
    time.sleep(0.1)  # job 0 is decoding
    ours.send(("job", 1, ids[1:], 5, 1, 1))
    ours.send(("cancel", 1))
    messages = [ours.recv(), ours.recv()]
    ours.send(None)
    child_loop.join(10)
    theirs.close()
    assert messages[1] == ("done", 0, translator.translate(SENTENCES[:1]))
    assert messages[0][0] == "stats" and messages[0][1].rows == 1
    with pytest.raises(EOFError):  # nothing for job 1: it never reached the decoder
        ours.recv()


def test_an_abandoned_request_leaves_nothing_behind(client: TestClient) -> None:
    engine = child(client)
    pid = engine.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        response = client.post("/translate", json={"text": SENTENCES[0]})
    finally:
        os.kill(pid, signal.SIGCONT)
    assert response.status_code == 504
    assert not engine._pending
    post(client, text=SENTENCES[1])
    assert engine.depth == 0


def test_a_killed_child_fails_its_requests_and_a_new_one_takes_over(
    client: TestClient, translator: Translator
) -> None:
    engine = child(client)
    pid = engine.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # alive but silent: the request waits in the pipe
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/translate", json={"text": SENTENCES[0]})
        time.sleep(0.3)
        os.kill(pid, signal.SIGKILL)
        response = pending.result(timeout=30)
    assert response.status_code == 503, response.text
    assert "inference process stopped" in response.json()["error"]
    assert response.headers["retry-after"] == "1"
    ready = client.get("/ready")  # the new child needs seconds to import torch and load
    assert ready.status_code == 503 and ready.json()["status"] == "restarting"
    deadline = time.monotonic() + 120
    while engine.pid in (None, pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert engine.pid not in (None, pid)
    assert post(client, texts=SENTENCES)["translations"] == translator.translate(SENTENCES)
    assert client.get("/ready").status_code == 200


def test_requests_are_shared_out_among_workers_and_survive_one_dying(
    tiny_checkpoint_path: Path, translator: Translator
) -> None:
    with TestClient(create_app(settings(tiny_checkpoint_path, workers=2))) as client:
        workers = pool(client).processes
        with ThreadPoolExecutor(8) as threads:
            answers = list(
                threads.map(lambda text: post(client, text=text)["translation"], SENTENCES * 8)
            )
        assert answers == translator.translate(SENTENCES * 8)
        assert all(worker.answered > 0 for worker in workers)
        first = workers[0].pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while workers[0].pid == first and time.monotonic() < deadline:
            time.sleep(0.01)  # until its receiver has seen it go
        assert workers[0].pid != first
        assert client.get("/ready").status_code == 200  # the other one serves meanwhile
        assert post(client, texts=SENTENCES)["translations"] == translator.translate(SENTENCES)


def test_workers_need_inference_processes() -> None:
    with pytest.raises(ValidationError, match="workers=2 needs inference 'process'"):
        Settings(workers=2)


def test_a_model_the_child_cannot_load_is_reported(tmp_path: Path) -> None:
    engine = InferenceProcess(settings(tmp_path / "missing.pt"))
    with pytest.raises(InferenceProcessError, match=r"could not start.*missing\.pt"):
        engine.launch()
    assert not engine.alive


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
