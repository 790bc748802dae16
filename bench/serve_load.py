"""Load test of `seq2seq serve` over loopback: throughput, latency, errors, memory, batching.

Starts the server as a subprocess, sends one-sentence requests (Multi30k test sentences when
present, else synthetic ones) at several concurrencies with wrk, or httpx when wrk is not
installed (`bench.load`), then repeats concurrency 32 against the same server with batching
off (max batch 1) for the speed-up from micro-batching and against the other server variants
(`--variant`: batching on a thread of the server process or in one or two inference
processes, with twice the threads, or with int8 weights; the one chosen is measured
throughout, the others (`--compare`) at concurrency 32 only), checks resident memory (server
and children) over a long run, and times the model alone at batch 1 and 32 for the most
static batching could gain. Every
phase is bounded in requests and in seconds, so the script always stops by itself. While
/tmp/seq2seq-quiet exists (another engineer's benchmark) it sends nothing: a phase waits for
the window to close, and one that is running when a window opens stops and starts over.

    python -m bench.serve_load --model models/multi30k_de_en.pt
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import random
import shutil
import sys
import time
from pathlib import Path

from bench.load import Phase, httpx_load, wrk_load
from bench.report import write_section
from bench.serve_report import load_note, model_note, ratio_at_32, report
from bench.server import Server, batch_totals
from bench.timing import QUIET
from training.config import default_data_dir

MODELS = (
    "models/multi30k_de_en.pt",
    "runs/multi30k_de_en/best.pt",
    "runs/quality/best.pt",
    "runs/perf/model.pt",
)
"""Tried in order when no --model is given."""
SYNTHETIC_WORDS = "ein der die mann frau hund kind läuft spielt auf im park mit dem ball"
"""Words of the synthetic sentences used when Multi30k is absent."""
SENTENCES = default_data_dir()
VARIANTS: dict[str, dict[str, str]] = {
    "thread": {},
    "process": {"--inference": "process"},
    "2 processes": {"--inference": "process", "--workers": "2"},
    "thread, 2 threads": {"--threads": "2"},
    "thread, int8": {"--precision": "int8"},
    "thread, int8, max batch 1": {"--precision": "int8", "--max-batch-size": "1"},
}
"""Server variants: their `seq2seq serve` options (each process has --threads threads unless
the variant says otherwise)."""


def sentences(count: int = 1000) -> tuple[list[str], str]:
    """German test sentences, and where they came from."""
    path = SENTENCES / "test_2016_flickr.de.gz"
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()][:count], path.name
    rng = random.Random(0)
    words = SYNTHETIC_WORDS.split()
    synthetic = [" ".join(rng.choices(words, k=rng.randint(5, 15))) + "." for _ in range(count)]
    return synthetic, "synthetic"


def run_phase(
    server: Server,
    name: str,
    texts: list[str],
    *,
    requests: int,
    concurrency: int,
    max_seconds: float,
) -> Phase:
    """One phase; if a quiet window opens meanwhile, it stops, waits, and starts over."""
    while True:
        wait_for_quiet(30)
        before = server.rss
        if server.client == "wrk":
            phase = wrk_load(
                server.url,
                texts,
                requests=requests,
                concurrency=concurrency,
                max_seconds=max_seconds,
            )
        else:
            phase = asyncio.run(
                httpx_load(
                    server.url,
                    texts,
                    requests=requests,
                    concurrency=concurrency,
                    max_seconds=max_seconds,
                )
            )
        if not QUIET.exists():
            break
        print(f"{name}: a quiet window opened; this phase will run again after it", flush=True)
    phase.name, phase.rss_before, phase.rss_after = name, before, server.rss
    print(phase.row(), flush=True)
    return phase


def wait_for_quiet(max_minutes: float) -> None:
    """Another engineer's CPU-sensitive benchmark runs while /tmp/seq2seq-quiet exists."""
    deadline = time.monotonic() + max_minutes * 60
    while QUIET.exists():
        if time.monotonic() > deadline:
            sys.exit(f"{QUIET} still exists after {max_minutes} minutes; try later")
        print(f"waiting: {QUIET} exists (quiet window)", flush=True)
        time.sleep(30)


def measure(server: Server, texts: list[str], args: argparse.Namespace) -> list[Phase]:
    """Warm up, then one phase per concurrency; notes the mean batch size of each."""
    run_phase(server, "warm-up", texts, requests=200, concurrency=8, max_seconds=60)
    phases = []
    for concurrency in args.concurrency:
        sentences_before, calls_before = batch_totals(server.url)
        phase = run_phase(
            server,
            "batched",
            texts,
            requests=args.requests,
            concurrency=concurrency,
            max_seconds=args.max_seconds,
        )
        sentences_after, calls_after = batch_totals(server.url)
        mean = (sentences_after - sentences_before) / max(calls_after - calls_before, 1)
        phase.name = f"{args.variant} (mean batch {mean:.1f})"
        phases.append(phase)
    return phases


def single_phase(
    args: argparse.Namespace, texts: list[str], name: str, *, max_batch_size: int, variant: str
) -> Phase:
    """A fresh server, a short warm-up, then `args.requests` requests at concurrency 32."""
    server = Server(args, max_batch_size=max_batch_size, options=VARIANTS[variant])
    try:
        server.wait_ready()
        run_phase(server, "warm-up", texts, requests=50, concurrency=8, max_seconds=30)
        sentences_before, calls_before = batch_totals(server.url)
        phase = run_phase(
            server,
            name,
            texts,
            requests=args.requests,
            concurrency=32,
            max_seconds=args.max_seconds,
        )
        sentences_after, calls_after = batch_totals(server.url)
    finally:
        server.stop()
    if max_batch_size > 1:
        mean = (sentences_after - sentences_before) / max(calls_after - calls_before, 1)
        phase.name = f"{name} (mean batch {mean:.1f})"
    return phase


def model_batching_gain(args: argparse.Namespace, texts: list[str]) -> tuple[float, float]:
    """Milliseconds per sentence of `Translator.translate_ids` alone at batch 1 and at batch 32,
    with the server's thread count: the most any server can gain from batching this model."""
    import torch

    from seq2seq import SearchOptions, Translator

    torch.set_num_threads(args.threads or torch.get_num_threads())
    translator = Translator.load(args.model, args.device)
    sources = translator.encode(texts[:320])
    per_sentence = []
    for size, count in ((1, 64), (32, 320)):
        chunks = [sources[i : i + size] for i in range(0, count, size)]
        translator.translate_ids(chunks[0], SearchOptions(beam_size=args.beam_size))  # warm-up
        started = time.perf_counter()
        for chunk in chunks:
            translator.translate_ids(
                chunk, SearchOptions(beam_size=args.beam_size), batch_size=size
            )
        per_sentence.append((time.perf_counter() - started) / count * 1000)
    return per_sentence[0], per_sentence[1]


def main() -> None:
    args = parse_args()
    wait_for_quiet(args.wait_minutes)
    load_before = Path("/proc/loadavg").read_text().split()[0]
    texts, source = sentences()
    server = Server(args, max_batch_size=args.max_batch_size, options=VARIANTS[args.variant])
    try:
        server.wait_ready()
        phases = measure(server, texts, args)
        memory = run_phase(
            server,
            "batched, memory run",
            texts,
            requests=args.rss_requests,
            concurrency=32,
            max_seconds=args.max_seconds * 2.5,
        )
    finally:
        server.stop()
    unbatched = single_phase(
        args,
        texts,
        f"{args.variant}, max batch 1 (no batching)",
        max_batch_size=1,
        variant=args.variant,
    )
    compared = [
        single_phase(args, texts, other, max_batch_size=args.max_batch_size, variant=other)
        for other in args.compare
        if other != args.variant
    ]
    body = report(phases, [unbatched, *compared], memory, args, source)
    wait_for_quiet(args.wait_minutes)
    one, many = model_batching_gain(args, texts)
    body += model_note(one, many, ratio_at_32(phases, unbatched), args.variant)
    body += load_note(load_before, Path("/proc/loadavg").read_text().split()[0])
    print(body)
    if args.write:
        write_section(args.section, body)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = next((m for m in MODELS if Path(m).exists()), MODELS[0])
    parser.add_argument("--model", default=default, help=f"checkpoint (default: {default})")
    parser.add_argument("--requests", type=int, default=2000, help="requests per phase")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--rss-requests", type=int, default=10_000, help="memory run length")
    parser.add_argument("--max-seconds", type=float, default=240, help="cap per phase")
    parser.add_argument("--beam-size", type=int, default=1, help="server default beam")
    parser.add_argument("--max-batch-size", type=int, default=64, help="batched server")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="server torch threads (0: torch's default, one per core)",
    )
    parser.add_argument("--max-wait-ms", type=float, default=10, help="batch fill wait")
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], default="cpu", help="where the server decodes"
    )
    parser.add_argument(
        "--variant",
        choices=list(VARIANTS),
        default="thread",
        help="the server in every phase (the others only at concurrency 32): "
        "batching and decoding on a thread of the server "
        "process or in child processes",
    )
    parser.add_argument(
        "--compare",
        nargs="*",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        metavar="VARIANT",
        help="other variants measured at concurrency 32 (default: all; none with no names)",
    )
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "httpx"],
        default="auto",
        help="load generator; auto: wrk when installed (apt-get install wrk), else httpx",
    )
    parser.add_argument("--wait-minutes", type=float, default=30, help="quiet-window wait cap")
    parser.add_argument("--section", default="Serving load", help="BENCHMARKS.md section")
    parser.add_argument(
        "--no-write",
        dest="write",
        action="store_false",
        help="print only; leave BENCHMARKS.md alone",
    )
    args = parser.parse_args()
    if not Path(args.model).is_file():
        parser.error(f"model {args.model} not found (train one, or pass --model)")
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "httpx"
    elif args.client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), or use --client httpx")
    return args


if __name__ == "__main__":
    main()
