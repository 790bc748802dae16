"""The short version of `bench.reliability`, against a real server on the tiny model: the
fuzzer finds no 5xx and no answer outside the spec, the soak loses no request even with the
inference process killed, and bad checkpoints stop with one line and run no code."""

from __future__ import annotations

import asyncio
from importlib.util import find_spec
from pathlib import Path

import pytest

from bench.reliability import bad_checkpoints, fuzz, serve, try_checkpoint
from bench.soak import inference_processes, requests_for, soak

pytestmark = pytest.mark.slow
TEXTS = ["eins zwei", "drei", "vier fünf sechs"]


@pytest.mark.skipif(not find_spec("schemathesis"), reason="schemathesis is a dev dependency")
def test_the_fuzzer_finds_no_server_error_and_nothing_outside_the_spec(
    tiny_checkpoint_path: Path, tmp_path: Path
) -> None:
    server = serve(tiny_checkpoint_path)
    try:
        runs = [fuzz(server.url, mode, 25, tmp_path) for mode in ("positive", "negative")]
    finally:
        server.stop()
    for run in runs:
        assert run["cases"] > 100, run["output"]
        assert not [code for code in run["statuses"] if code >= 500], run["statuses"]
        assert run["exit"] == 0 and not run["failed"], run["output"]
    assert runs[0]["statuses"][200] > runs[0]["cases"] / 3  # valid input is mostly translated


def test_a_soak_with_a_killed_inference_process_loses_nothing(tiny_checkpoint_path: Path) -> None:
    server = serve(tiny_checkpoint_path)
    try:
        child = inference_processes(server.process.pid)[0]
        bodies = requests_for(TEXTS, 400, bad_share=0.2)
        tally, recovery = asyncio.run(
            soak(server.url, bodies, concurrency=32, child=child, kill_after=150)
        )
    finally:
        server.stop()
    assert tally.sent == 400 and not tally.lost, tally.lost
    assert tally.server_errors() == 0 and tally.no_retry_after == 0, tally.statuses
    assert tally.statuses[503] > 0  # the requests the killed process held, with Retry-After
    assert tally.statuses[200] > 100 and tally.statuses[422] > 30
    assert recovery is not None and recovery < 60


def test_bad_checkpoints_stop_with_one_line_and_run_no_code(
    tiny_checkpoint_path: Path, tmp_path: Path
) -> None:
    corpus = bad_checkpoints(tiny_checkpoint_path, tmp_path)
    for name in ("zero bytes", "code-running pickle", "wrong shapes"):
        seen = try_checkpoint(corpus[name], "process")
        assert (seen["exit"], seen["lines"]) == (2, 1), (name, seen)
        assert (
            seen["said"].startswith("seq2seq serve: error: ") and str(corpus[name]) in seen["said"]
        )
    assert not (tmp_path / "pickle-ran-code").exists()
