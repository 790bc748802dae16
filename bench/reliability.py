"""Reliability against hostile clients and crashes, on a real server started from a small model.

1. Schemathesis over the server's OpenAPI spec, positive and negative modes: every answer by
   status, and the checks it failed (a 5xx, an answer outside the spec, schema-valid input
   refused, schema-invalid input accepted).
2. A mixed soak: requests from many keep-alive clients with bad ones mixed in, and the
   inference process killed with SIGKILL in the middle (`bench.soak`): answers by status,
   5xx other than the kill's 503s (goal 0), requests lost without an answer (goal 0), the
   seconds until /ready is 200 again, and the server's memory before and after.
3. A corpus of bad checkpoints (truncated, random bytes, zero bytes, a pickle that runs code,
   weights of the wrong shape), each served in thread and process inference: one line,
   exit status 2, and no code run.

    python -m bench.reliability            # the whole run; its table goes into BENCHMARKS.md
    python -m bench.reliability --quick    # a few hundred cases, under a minute (the tests)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from bench.report import write_section
from bench.server import Server
from bench.soak import Tally, inference_processes, requests_for, send_all, soak
from bench.timing import table, wait_for_quiet
from seq2seq import load_checkpoint, save_checkpoint

SECTION = "Reliability"
FAILURE = re.compile(r"❌ (ST\d+ [^:\n]+): (\d+)")
"""A failed check in Schemathesis's summary, with how often it failed."""
TEXTS = ["a b c", "c a", "b b a c", "a", "c c c b a b"]
"""Sentences of the small model's language (the copy task of `bench.toy_tasks`)."""


def small_model(folder: Path) -> Path:
    """A copy-task model trained in seconds with `training.train`: a small, real checkpoint."""
    from bench.toy_tasks import COPYING, train_task

    train_task(replace(COPYING, steps=300), folder)
    return folder / "run" / "best.pt"


def serve(model: Path, **options: str) -> Server:
    """`seq2seq serve` on `model` with one inference process, ready."""
    args = argparse.Namespace(
        client="httpx", model=str(model), device="cpu", beam_size=1, threads=1, max_wait_ms=5
    )
    server = Server(args, max_batch_size=64, options={"--inference": "process", **options})
    server.wait_ready()
    return server


def fuzz(url: str, mode: str, examples: int, folder: Path) -> dict[str, Any]:
    """Schemathesis in `mode` with up to `examples` cases per operation: statuses and failures."""
    har = folder / f"{mode}.har"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--mode",
        mode,
        "--max-examples",
        str(examples),
        "--seed",
        "1",
        "--no-shrink",
        "--workers",
        "2",
        "--request-timeout",
        "60",
        "--no-color",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--report",
        "har",
        "--report-har-path",
        str(har),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    entries = json.loads(har.read_text())["log"]["entries"] if har.exists() else []
    statuses = Counter(entry["response"]["status"] for entry in entries)
    failed = [f"{name} ({count})" for name, count in FAILURE.findall(result.stdout)]
    return {
        "mode": mode,
        "cases": len(entries),
        "statuses": statuses,
        "exit": result.returncode,
        "failed": failed,
        "output": result.stdout[-3000:],
    }


def bad_checkpoints(good: Path, folder: Path) -> dict[str, Path]:
    """The corpus: a damaged file for each way a checkpoint goes wrong."""
    data = good.read_bytes()
    marker = folder / "pickle-ran-code"
    corpus = {
        "truncated": data[: len(data) // 2],
        "random bytes": os.urandom(len(data)),
        "zero bytes": b"",
        "code-running pickle": pickle.dumps(Evil(str(marker))),
    }
    paths = {}
    for name, content in corpus.items():
        paths[name] = folder / f"{name.replace(' ', '-')}.pt"
        paths[name].write_bytes(content)
    checkpoint = load_checkpoint(good)
    name, tensor = next(iter(checkpoint.model_state.items()))
    checkpoint.model_state[name] = torch.zeros(tensor.shape[0] + 1, *tensor.shape[1:])
    paths["wrong shapes"] = folder / "wrong-shapes.pt"
    save_checkpoint(checkpoint, paths["wrong shapes"])
    return paths


class Evil:
    """Unpickling this would create a file: proof that loading ran code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path(self.path).touch, ())


def try_checkpoint(path: Path, inference: str) -> dict[str, Any]:
    """`seq2seq serve` on a bad checkpoint: its exit status and what it printed."""
    command = [sys.executable, "-m", "seq2seq.cli", "serve", "--model", str(path)]
    command += ["--inference", inference, "--device", "cpu", "--port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    return {"exit": result.returncode, "lines": len(lines), "said": lines[-1] if lines else ""}


def corpus_rows(good: Path, folder: Path) -> list[list[Any]]:
    """One row per bad checkpoint and inference kind."""
    rows = []
    for name, path in bad_checkpoints(good, folder).items():
        for inference in ("thread", "process"):
            seen = try_checkpoint(path, inference)
            ran = (folder / "pickle-ran-code").exists()
            said = seen["said"].replace(str(path), "FILE").replace("|", "/")[:110]
            rows.append(
                [name, inference, seen["exit"], seen["lines"], "yes" if ran else "no", said]
            )
    return rows


def soak_run(model: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The soak against a fresh server, its inference process killed in the middle; then
    many keep-alive clients, against servers keeping idle connections 65 s (the default) and
    5 s (uvicorn's own default, as long as httpx keeps its connections)."""
    server = serve(model)
    try:
        child = inference_processes(server.process.pid)[0]
        rss_before = server.rss
        bodies = requests_for(TEXTS, args.requests, bad_share=0.2)
        tally, recovery = asyncio.run(
            soak(
                server.url,
                bodies,
                concurrency=args.concurrency,
                child=child,
                kill_after=args.requests * 2 // 5,
            )
        )
        rss = (rss_before, server.rss)
    finally:
        server.stop()
    many = {keep: many_clients(model, keep, args) for keep in (65, 5)}
    return {"tally": tally, "recovery": recovery, "many": many, "rss": rss}


def many_clients(model: Path, keep_alive_s: int, args: argparse.Namespace) -> Tally:
    """`args.keepalive_requests` good requests from `args.keepalive_clients` clients."""
    server = serve(model, **{"--keep-alive-s": str(keep_alive_s)})
    try:
        bodies = requests_for(TEXTS, args.keepalive_requests, bad_share=0.0)
        return asyncio.run(send_all(server.url, bodies, concurrency=args.keepalive_clients))
    finally:
        server.stop()


def report(
    fuzzed: list[dict[str, Any]],
    soaked: dict[str, Any],
    corpus: list[list[Any]],
    args: argparse.Namespace,
) -> str:
    """The BENCHMARKS.md section."""
    fuzz_rows = [
        [
            run["mode"],
            run["cases"],
            statuses(run["statuses"]),
            sum(n for code, n in run["statuses"].items() if code >= 500),
            ", ".join(run["failed"]) or "none",
        ]
        for run in fuzzed
    ]
    tally = soaked["tally"]
    before, after = (rss / 2**20 for rss in soaked["rss"])
    soak_rows = [
        [
            f"{tally.sent} requests, concurrency {args.concurrency}, 20% bad, SIGKILL of the "
            f"inference process after {args.requests * 2 // 5} answers",
            statuses(tally.statuses),
            tally.server_errors(),
            lost(tally),
            f"{soaked['recovery']:.1f} s",
            f"{before:.0f} → {after:.0f}",
        ],
    ]
    for keep, many in soaked["many"].items():
        soak_rows.append(
            [
                f"{many.sent} requests from {args.keepalive_clients} keep-alive clients, idle "
                f"connections kept {keep} s",
                statuses(many.statuses),
                many.server_errors(),
                lost(many),
                "",
                "",
            ]
        )
    return "\n\n".join(
        [
            f"Small model: the copy task of `bench.toy_tasks` (300 steps); server: `seq2seq serve "
            f"--inference process --threads 1`, load average {os.getloadavg()[0]:.2f} at the end.",
            "Schemathesis over `/openapi.json` (every operation, `--checks all`):",
            table(["mode", "cases", "answers by status", "5xx", "checks failed"], fuzz_rows),
            "Mixed soak (5xx: other than the kill's 503s, which carry `Retry-After`; lost: no "
            "HTTP answer at all):",
            table(
                [
                    "load",
                    "answers by status",
                    "5xx",
                    "lost",
                    "/ready again after",
                    "server RSS MiB",
                ],
                soak_rows,
            ),
            "Bad checkpoints, each served in thread and in process inference:",
            table(
                ["checkpoint", "inference", "exit", "lines printed", "code ran", "last line"],
                corpus,
            ),
        ]
    )


def lost(tally: Tally) -> str:
    """How many requests got no answer, and how they failed."""
    total = sum(tally.lost.values())
    return (
        f"{total} ({', '.join(f'{n} {kind}' for kind, n in tally.lost.items())})" if total else "0"
    )


def statuses(counts: Counter[int]) -> str:
    return ", ".join(f"{code}: {count}" for code, count in sorted(counts.items()))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint to serve (default: a small one, made here)")
    parser.add_argument("--quick", action="store_true", help="a few hundred cases in all")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    scale = 0.05 if args.quick else 1.0
    args.examples, args.requests = round(400 * scale) or 5, round(10_000 * scale)
    args.concurrency = 64
    args.keepalive_clients, args.keepalive_requests = 500, round(5000 * scale)
    return args


def main() -> None:
    args = parse_args()
    wait_for_quiet()
    with tempfile.TemporaryDirectory(prefix="reliability-") as scratch:
        folder = Path(scratch)
        model = Path(args.model) if args.model else small_model(folder / "model")
        server = serve(model)
        try:
            fuzzed = [
                fuzz(server.url, mode, args.examples, folder) for mode in ("positive", "negative")
            ]
        finally:
            server.stop()
        soaked = soak_run(model, args)
        corpus = corpus_rows(model, folder)
    body = report(fuzzed, soaked, corpus, args)
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
