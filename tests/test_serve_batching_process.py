"""Batching and decoding in child processes: what crosses the pipe, a crash fails only what the
child held and a new child takes over, several children share the work, shutdown leaves
nothing behind."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from conftest import slow_down
from fastapi.testclient import TestClient
from pydantic import ValidationError

from seq2seq import SearchOptions, Translator
from serve.app import create_app
from serve.batching import BatcherUnavailable, BatchLimits
from serve.batching.loading import Loading, ModelCall
from serve.batching.pool import BatcherPool
from serve.batching.process import ProcessBatcher, _send_locked, serve_pipe
from serve.batching.thread import ThreadBatcher
from serve.settings import Settings

pytestmark = pytest.mark.slow

SENTENCES = ["drei eins vier", "null", "neun acht sieben sechs"]
GREEDY = SearchOptions(beam_size=1)


@pytest.fixture(scope="module")
def translator(tiny_checkpoint_path: Path) -> Translator:
    return Translator.load(tiny_checkpoint_path, device="cpu")


def settings(path: Path, **overrides: Any) -> Settings:
    return Settings(
        model=[str(path)], device="cpu", max_wait_ms=2, threads=1, inference="process", **overrides
    )


@pytest.fixture(scope="module")
def client(tiny_checkpoint_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings(tiny_checkpoint_path, request_timeout_s=1))) as client:
        yield client


def batcher_of(client: TestClient) -> Any:
    return client.app.state.registry.models[0].batcher  # type: ignore[attr-defined]


def post(client: TestClient, **body: Any) -> Any:
    response = client.post("/translate", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_child_translates_and_reports_and_goes_with_the_server(
    tiny_checkpoint_path: Path, translator: Translator
) -> None:
    with TestClient(create_app(settings(tiny_checkpoint_path))) as client:
        expected = translator.translate(SENTENCES, GREEDY)
        assert post(client, texts=SENTENCES)["translations"] == expected
        ranked = post(client, text=SENTENCES[0], alternatives=2)  # candidates cross the pipe
        best = translator.translate(SENTENCES[:1], SearchOptions(beam_size=3))[0]
        assert ranked["translation"] == best and best not in ranked["alternatives"]
        assert client.get("/models").json()[0]["device"] == "cpu"
        assert "seq2seq_batch_size_sentences_count 2.0" in client.get("/metrics").text
        pid = batcher_of(client).pid
        assert pid is not None and _running(pid)
    assert not _running(pid)  # shutting the server down stops the child


def test_the_child_never_decodes_a_job_cancelled_while_it_waits(
    tiny_checkpoint_path: Path, translator: Translator
) -> None:
    slow = Translator.load(tiny_checkpoint_path, device="cpu")
    slow_down(slow, 0.05)
    limits = BatchLimits(max_wait_ms=0)
    ours, theirs = multiprocessing.Pipe()
    send = partial(_send_locked, theirs, threading.Lock())
    batcher = ThreadBatcher(ModelCall(slow, limits, 1), limits)
    batcher.on_batch = lambda stats: send(("stats", stats, batcher.depth))
    child = threading.Thread(target=asyncio.run, args=(serve_pipe(theirs, batcher, send, {}),))
    child.start()
    assert ours.recv()[0] == "ready"
    ids = translator.encode(SENTENCES)
    ours.send(("job", 0, ids[:1], GREEDY))
    time.sleep(0.1)  # job 0 is decoding
    ours.send(("job", 1, ids[1:], GREEDY))
    ours.send(("cancel", 1))
    messages = [ours.recv(), ours.recv()]
    ours.send(None)
    child.join(10)
    theirs.close()
    assert messages[1] == ("done", 0, translator.translate_ids(ids[:1], GREEDY))
    assert messages[0][0] == "stats" and messages[0][1].rows == 1
    with pytest.raises(EOFError):  # nothing for job 1: it never reached the decoder
        ours.recv()


def test_an_abandoned_request_leaves_nothing_behind(client: TestClient) -> None:
    batcher = batcher_of(client)
    pid = batcher.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        response = client.post("/translate", json={"text": SENTENCES[0]})
    finally:
        os.kill(pid, signal.SIGCONT)
    assert response.status_code == 504
    assert not batcher._pending
    post(client, text=SENTENCES[1])
    assert batcher.depth == 0


def test_a_killed_child_fails_its_requests_and_a_new_one_takes_over(
    client: TestClient, translator: Translator
) -> None:
    batcher = batcher_of(client)
    pid = batcher.pid
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
    while batcher.pid in (None, pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert batcher.pid not in (None, pid)
    expected = translator.translate(SENTENCES, GREEDY)
    assert post(client, texts=SENTENCES)["translations"] == expected
    assert client.get("/ready").status_code == 200


def test_jobs_are_shared_out_among_workers_and_survive_one_dying(
    tiny_checkpoint_path: Path, translator: Translator
) -> None:
    with TestClient(create_app(settings(tiny_checkpoint_path, workers=2))) as client:
        pool: BatcherPool = batcher_of(client)
        with ThreadPoolExecutor(8) as threads:
            answers = list(
                threads.map(lambda text: post(client, text=text)["translation"], SENTENCES * 8)
            )
        assert answers == translator.translate(SENTENCES * 8, GREEDY)
        assert all(count > 0 for count in pool.jobs)
        workers: list[ProcessBatcher] = pool.members  # type: ignore[assignment]
        first = workers[0].pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while workers[0].pid == first and time.monotonic() < deadline:
            time.sleep(0.01)  # until its receiver has seen it go
        assert workers[0].pid != first
        assert client.get("/ready").status_code == 200  # the other one serves meanwhile
        expected = translator.translate(SENTENCES, GREEDY)
        assert post(client, texts=SENTENCES)["translations"] == expected


def test_workers_need_inference_processes() -> None:
    with pytest.raises(ValidationError, match="workers=2 needs inference 'process'"):
        Settings(workers=2)


def test_a_model_the_child_cannot_load_is_reported(tmp_path: Path) -> None:
    batcher = ProcessBatcher(Loading(str(tmp_path / "missing.pt"), "cpu"), BatchLimits())
    with pytest.raises(BatcherUnavailable, match=r"could not start.*missing\.pt"):
        asyncio.run(batcher.start())
    assert not batcher.alive


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
