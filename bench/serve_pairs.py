"""A server of several language pairs under load: the same concurrency on one pair and spread
over three, and its memory with every model loaded and after they are unloaded when idle.

Starts `seq2seq serve --models DIR` (every pair model there), sends one test_2016_flickr
sentence per request in LibreTranslate's shape (`q`, `source`, `target`) with wrk (or httpx),
first all for one pair, then in turn for three pairs (each request in its source language),
and compares throughput and latency; then waits until the idle models are unloaded
(`--idle-unload-s`) and reads the server's memory again.

    python -m bench.serve_pairs --models models --pairs de-en en-de fr-en
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import shutil
import time
from pathlib import Path

import httpx
import torch

from bench.load import CLIENTS, Phase, httpx_load, wrk_load
from bench.report import write_section
from bench.server import Server
from bench.timing import table, wait_for_quiet
from seq2seq import SearchOptions, Translator
from training.config import default_data_dir

SECTION = "Serving several language pairs"


def sentences(language: str, count: int = 1000) -> list[str]:
    """test_2016_flickr sentences in `language`."""
    path = default_data_dir() / f"test_2016_flickr.{language}.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [line.strip() for line in lines if line.strip()][:count]


def bodies(pairs: list[str]) -> list[dict[str, object]]:
    """Requests taking the pairs in turn, each with a sentence of its source language."""
    texts = {pair: sentences(pair.split("-")[0]) for pair in pairs}
    found: list[dict[str, object]] = []
    for number in range(1000):
        pair = pairs[number % len(pairs)]
        source, target = pair.split("-")
        found.append({"q": texts[pair][number // len(pairs)], "source": source, "target": target})
    return found


def load(server: Server, requests: list[dict[str, object]], args: argparse.Namespace) -> Phase:
    """One phase at `args.concurrency`."""
    if server.client == "wrk":
        phase = wrk_load(
            server.url,
            [],
            requests=args.requests,
            concurrency=args.concurrency,
            max_seconds=args.max_seconds,
            bodies=requests,
        )
    else:
        texts = [str(body["q"]) for body in requests]
        phase = asyncio.run(
            httpx_load(
                server.url,
                texts,
                requests=args.requests,
                concurrency=args.concurrency,
                max_seconds=args.max_seconds,
            )
        )
    return phase


def unloaded(url: str, timeout: float) -> bool:
    """Wait until every model is unloaded; whether they were in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(model["state"] == "unloaded" for model in httpx.get(url + "/models").json()):
            return True
        time.sleep(1)
    return False


def measure(args: argparse.Namespace) -> tuple[list[Phase], list[tuple[str, int]], int]:
    """The phases (one pair, then all), the memory readings, and how many models served."""
    server_args = argparse.Namespace(
        client=args.client,
        model=None,
        device="cpu",
        beam_size=1,
        threads=args.threads,
        max_wait_ms=10,
    )
    options = {
        "--models": args.models,
        "--idle-unload-s": str(args.idle_unload_s),
        "--inference": args.inference,
    }
    server = Server(server_args, max_batch_size=64, options=options)
    try:
        server.wait_ready()
        served = len(httpx.get(server.url + "/models").json())
        memory = [("every model loaded, before any request", server.rss)]
        load(
            server, bodies(args.pairs)[:200], argparse.Namespace(**{**vars(args), "requests": 200})
        )
        phases = []
        for name, pairs in (
            (f"one pair ({args.pairs[0]})", args.pairs[:1]),
            (f"{len(args.pairs)} pairs in turn", args.pairs),
        ):
            before = server.rss
            phase = load(server, bodies(pairs), args)
            phase.name, phase.rss_before, phase.rss_after = name, before, server.rss
            phases.append(phase)
            print(phase.row(), flush=True)
        memory.append(("every model loaded, after the load", server.rss))
        if unloaded(server.url, args.idle_unload_s * 3 + 30):
            memory.append(
                (f"after {args.idle_unload_s:g} s idle: every model unloaded", server.rss)
            )
        return phases, memory, served
    finally:
        server.stop()


def batch_cost(args: argparse.Namespace) -> str:
    """The model alone, on the server's threads: ms per sentence in a batch of the whole
    concurrency (one pair) and of its share per model (every pair): what spreading the same
    requests over several models costs before any serving overhead."""
    torch.set_num_threads(args.threads or torch.get_num_threads())
    source = args.pairs[0].split("-")[0]
    translator = Translator.load(
        Path(args.models) / f"multi30k_{args.pairs[0].replace('-', '_')}.pt", "cpu"
    )
    lines, options = sentences(source, 10 * args.concurrency), SearchOptions(beam_size=1)
    sizes = [args.concurrency, max(1, args.concurrency // len(args.pairs))]
    costs = []
    for size in sizes:
        translator.translate(lines[:size], options, batch_size=size)
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            for first in range(0, len(lines), size):
                translator.translate(lines[first : first + size], options, batch_size=size)
            runs.append((time.perf_counter() - started) / len(lines) * 1000)
        costs.append(min(runs))
    return (
        f"The {args.pairs[0]} model alone on {torch.get_num_threads()} thread(s), best of 3: "
        f"{costs[0]:.2f} ms a sentence in batches of {sizes[0]}, {costs[1]:.2f} ms in batches of "
        f"{sizes[1]}, a ratio of {costs[0] / costs[1]:.2f}: at a fixed concurrency, each of "
        f"{len(args.pairs)} models gets 1/{len(args.pairs)} of the requests to batch."
    )


def report(
    phases: list[Phase], memory: list[tuple[str, int]], served: int, args: argparse.Namespace
) -> str:
    one, mixed = phases
    ratio = mixed.rate / one.rate
    checks = [
        (f"throughput over {len(args.pairs)} pairs / one pair: {ratio:.3f}x", ratio >= 0.8),
        (f"p99 over {len(args.pairs)} pairs: {mixed.p99:.0f} ms", mixed.p99 < 500),
        (f"errors: {one.errors + mixed.errors}", one.errors + mixed.errors == 0),
    ]
    header = (
        "| load | concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | errors | RSS MiB |"
    )
    rows = "\n".join(phase.row() for phase in phases)
    return "\n\n".join(
        [
            f"`seq2seq serve --models {args.models} --inference {args.inference}` ({served} "
            f"models, one per pair, {args.threads or 'default'} torch thread(s)), one "
            f"test_2016_flickr sentence per request, LibreTranslate's fields, "
            f"{CLIENTS[args.client]}, concurrency {args.concurrency}, greedy.",
            f"{header}\n|---|---|---|---|---|---|---|---|---|\n{rows}",
            "\n".join(f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks),
            batch_cost(args),
            table(
                ["server memory", "RSS MiB"], [[name, f"{rss / 2**20:.0f}"] for name, rss in memory]
            ),
        ]
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="models", help="directory of pair models")
    parser.add_argument("--pairs", nargs="+", default=["de-en", "en-de", "fr-en"])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3000, help="per phase")
    parser.add_argument("--max-seconds", type=float, default=60, help="per phase")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    parser.add_argument("--inference", choices=["thread", "process"], default="thread")
    parser.add_argument("--idle-unload-s", type=float, default=20)
    parser.add_argument(
        "--client", choices=["wrk", "httpx"], default="wrk" if shutil.which("wrk") else "httpx"
    )
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    missing = [
        pair
        for pair in args.pairs
        if not (Path(args.models) / f"multi30k_{pair.replace('-', '_')}.pt").exists()
    ]
    if missing:
        parser.error(f"no model for {', '.join(missing)} in {args.models} (seq2seq train-models)")
    return args


def main() -> None:
    args = parse_args()
    wait_for_quiet()
    phases, memory, served = measure(args)
    body = report(phases, memory, served, args)
    print(body)
    if args.write:
        write_section(f"{SECTION}, {args.inference} inference", body)


if __name__ == "__main__":
    main()
