"""Load test of `seq2seq serve` over loopback: throughput, latency, errors, memory, batching.

Starts the server as a subprocess, sends one-sentence requests (Multi30k test sentences when
present, else synthetic ones) at several concurrencies with httpx, then repeats concurrency 32
against a server with batching off (max batch 1) for the speed-up from micro-batching, and
checks resident memory over a long run. Every phase is bounded in requests and in seconds, so
the script always stops by itself. While /tmp/seq2seq-quiet exists (another engineer's
benchmark) it sends nothing: a phase waits for the window to close, and one that is running
when a window opens stops and starts over afterwards.

    python -m bench.serve_load --model models/multi30k_de_en.pt
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.report import write_section
from training.config import default_data_dir

MODELS = ("models/multi30k_de_en.pt", "runs/multi30k_de_en/best.pt", "runs/quality/best.pt",
          "runs/perf/model.pt")
"""Tried in order when no --model is given."""
SENTENCES = default_data_dir()
QUIET = Path("/tmp/seq2seq-quiet")
CLIENTS = {
    "wrk": "wrk, one C thread",
    "httpx": "httpx.AsyncClient in Python, which needs about as much CPU per request as the server",
}
"""How each load generator is described in the report."""
WRK_NOTE = (
    " (wrk runs for a time, not a count: each phase lasts 1.15 x `requests` / the rate of a "
    "3-second run before it, so request counts are approximate)"
)


@dataclass
class Phase:
    """What one load phase measured."""

    name: str
    concurrency: int
    sent: int
    errors: int
    seconds: float
    p50: float
    p95: float
    p99: float
    """Latency percentiles in ms."""
    rss_before: int = 0
    rss_after: int = 0

    @property
    def rate(self) -> float:
        return (self.sent - self.errors) / self.seconds

    def row(self) -> str:
        return (
            f"| {self.name} | {self.concurrency} | {self.sent} | {self.rate:.1f} | "
            f"{self.p50:.0f} | {self.p95:.0f} | {self.p99:.0f} | {self.errors} | "
            f"{self.rss_before / 2**20:.0f} → {self.rss_after / 2**20:.0f} |"
        )


def percentiles_ms(latencies: list[float]) -> tuple[float, float, float]:
    """p50, p95, p99 of latencies in seconds, in ms."""
    if len(latencies) < 2:
        return (latencies[0] * 1000,) * 3 if latencies else (float("nan"),) * 3
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000, cuts[98] * 1000


def sentences(count: int = 1000) -> tuple[list[str], str]:
    """German test sentences, and where they came from."""
    path = SENTENCES / "test_2016_flickr.de.gz"
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return [line.strip() for line in handle if line.strip()][:count], path.name
    rng = random.Random(0)
    words = [
        "ein",
        "der",
        "die",
        "mann",
        "frau",
        "hund",
        "kind",
        "läuft",
        "spielt",
        "auf",
        "im",
        "park",
        "mit",
        "dem",
        "ball",
    ]
    synthetic = [" ".join(rng.choices(words, k=rng.randint(5, 15))) + "." for _ in range(count)]
    return synthetic, "synthetic"


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`seq2seq serve` in a subprocess on a free loopback port."""

    def __init__(self, args: argparse.Namespace, *, max_batch_size: int) -> None:
        self.client: str = args.client
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "seq2seq.cli",
            "serve",
            "--model",
            args.model,
            "--port",
            str(self.port),
            "--device",
            "cpu",
            "--beam-size",
            str(args.beam_size),
            "--threads",
            str(args.threads),
            "--max-batch-size",
            str(max_batch_size),
            "--max-wait-ms",
            str(args.max_wait_ms),
        ]
        env = {**os.environ, "SEQ2SEQ_LOG_LEVEL": "warning", "SEQ2SEQ_MAX_QUEUE_SIZE": "1024"}
        self.process = subprocess.Popen(command, env=env)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"server exited with status {self.process.returncode}")
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        sys.exit("server did not become ready")

    @property
    def rss(self) -> int:
        return rss_bytes(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def httpx_load(
    url: str, texts: list[str], *, requests: int, concurrency: int, max_seconds: float
) -> Phase:
    """Send up to `requests` requests from `concurrency` httpx clients; stop at `max_seconds`."""
    counter = itertools.count()
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    def going_on() -> bool:
        return time.perf_counter() - started < max_seconds and not QUIET.exists()

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while (n := next(counter)) < requests and going_on():
            sent = time.perf_counter()
            try:
                response = await client.post("/translate", json={"text": texts[n % len(texts)]})
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - sent)
            errors += not ok

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return Phase("", concurrency, len(latencies), errors, seconds, *percentiles_ms(latencies))


WRK_SCRIPT = """
local bodies = {}
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
local sent = 0
function request()
  sent = sent + 1
  local headers = {["Content-Type"] = "application/json"}
  return wrk.format("POST", "/translate", headers, bodies[(sent - 1) % #bodies + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""
"""wrk hooks: cycle through the request bodies, print one result line at the end."""


def wrk_load(
    url: str, texts: list[str], *, requests: int, concurrency: int, max_seconds: float
) -> Phase:
    """The same load from `wrk` (one C thread), which leaves the CPU to the server.

    wrk runs for a duration, not a count: a 3-second run at this concurrency measures the
    rate, then the phase runs long enough for about 1.15 x `requests` requests (at most
    `max_seconds`), so that it reaches `requests` even when the rate dips."""
    with tempfile.TemporaryDirectory() as folder:
        script, bodies = Path(folder) / "load.lua", Path(folder) / "bodies.jsonl"
        script.write_text(WRK_SCRIPT)
        bodies.write_text("".join(json.dumps({"text": text}) + "\n" for text in texts))
        probe = run_wrk(url, script, bodies, concurrency=concurrency, seconds=3)
        seconds = min(max_seconds, max(3, round(1.15 * requests / max(probe.rate, 0.1))))
        return run_wrk(url, script, bodies, concurrency=concurrency, seconds=seconds)


def run_wrk(url: str, script: Path, bodies: Path, *, concurrency: int, seconds: float) -> Phase:
    """One wrk run and what it measured."""
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{round(seconds)}s", "--timeout", "60s",
               "-s", str(script), url, "--", str(bodies)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    sent, errors, duration, *micros = (int(x) for x in line.split()[1:])
    p50, p95, p99 = (x / 1000 for x in micros)
    return Phase("", concurrency, sent, errors, duration / 1e6, p50, p95, p99)


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
            phase = wrk_load(server.url, texts, requests=requests, concurrency=concurrency,
                             max_seconds=max_seconds)
        else:
            phase = asyncio.run(httpx_load(server.url, texts, requests=requests,
                                           concurrency=concurrency, max_seconds=max_seconds))
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


def batch_totals(url: str) -> tuple[float, float]:
    """(sentences, translate calls) so far, from the server's Prometheus metrics."""
    values = {}
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        name, _, value = line.partition(" ")
        values[name] = value
    return (
        float(values.get("seq2seq_batch_size_sentences_sum", 0)),
        float(values.get("seq2seq_batch_size_sentences_count", 0)),
    )


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
        phase.name = f"batched (mean batch {mean:.1f})"
        phases.append(phase)
    return phases


def model_batching_gain(args: argparse.Namespace, texts: list[str]) -> tuple[float, float]:
    """Milliseconds per sentence of `Translator.translate_ids` alone at batch 1 and at batch 32,
    with the server's thread count: the most any server can gain from batching this model."""
    import torch

    from seq2seq import Translator

    torch.set_num_threads(args.threads or torch.get_num_threads())
    translator = Translator.load(args.model, "cpu")
    sources = translator.encode(texts[:320])
    per_sentence = []
    for size, count in ((1, 64), (32, 320)):
        chunks = [sources[i : i + size] for i in range(0, count, size)]
        translator.translate_ids(chunks[0], beam_size=args.beam_size)  # warm-up
        started = time.perf_counter()
        for chunk in chunks:
            translator.translate_ids(chunk, beam_size=args.beam_size, batch_size=size)
        per_sentence.append((time.perf_counter() - started) / count * 1000)
    return per_sentence[0], per_sentence[1]


def ratio_at_32(phases: list[Phase], unbatched: Phase) -> float:
    """Batched throughput at concurrency 32 (else the highest) over the unbatched server's."""
    at32 = next((p for p in phases if p.concurrency == 32), phases[-1])
    return at32.rate / unbatched.rate


def report(
    phases: list[Phase], unbatched: Phase, memory: Phase, args: argparse.Namespace, source: str
) -> str:
    at32 = next((p for p in phases if p.concurrency == 32), phases[-1])
    ratio = ratio_at_32(phases, unbatched)
    growth = (memory.rss_after - memory.rss_before) / memory.rss_before * 100
    header = (
        "| server | concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| server RSS MiB |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = "\n".join(p.row() for p in [*phases, unbatched, memory])
    checks = [
        (f"batching speed-up at concurrency {at32.concurrency}: {ratio:.1f}x", ratio >= 8),
        (
            f"p99 at concurrency {at32.concurrency}: {at32.p99:.0f} ms",
            at32.p99 < 500,
        ),
        (
            f"errors: {sum(p.errors for p in [*phases, unbatched, memory])}",
            all(p.errors == 0 for p in [*phases, unbatched, memory]),
        ),
        (f"RSS growth over {memory.sent} requests: {growth:+.1f}%", growth < 10),
    ]
    targets = "\n".join(f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks)
    threads = args.threads or "default"
    return (
        f"Model `{args.model}`, beam size {args.beam_size}, one {source} sentence per "
        f"request over loopback ({CLIENTS[args.client]}), server on CPU with {threads} torch "
        f"thread(s), max wait {args.max_wait_ms} ms; each phase is capped at "
        f"{args.max_seconds:.0f} s{WRK_NOTE if args.client == 'wrk' else ''}."
        f"\n\n{header}\n{rows}\n\nTargets (concurrency 32: >= 8x "
        f"the unbatched server, p99 < 500 ms, no errors; RSS growth < 10%):\n\n{targets}\n"
    )


def main() -> None:
    args = parse_args()
    wait_for_quiet(args.wait_minutes)
    load_before = Path("/proc/loadavg").read_text().split()[0]
    texts, source = sentences()
    server = Server(args, max_batch_size=args.max_batch_size)
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
    plain = Server(args, max_batch_size=1)
    try:
        plain.wait_ready()
        run_phase(plain, "warm-up", texts, requests=50, concurrency=8, max_seconds=30)
        unbatched = run_phase(
            plain,
            "max batch 1 (no batching)",
            texts,
            requests=args.requests,
            concurrency=32,
            max_seconds=args.max_seconds,
        )
    finally:
        plain.stop()
    body = report(phases, unbatched, memory, args, source)
    wait_for_quiet(args.wait_minutes)
    one, many = model_batching_gain(args, texts)
    body += (
        f"\nThe model alone, in this process with the server's thread count: {one:.1f} ms per "
        f"sentence at batch 1, {many:.1f} ms at batch 32, so batching can gain at most "
        f"{one / many:.1f}x here before any HTTP work; the server reached "
        f"{ratio_at_32(phases, unbatched):.1f}x.\n"
    )
    load_after = Path("/proc/loadavg").read_text().split()[0]
    body += (
        f"\nLoad average (1 min) {load_before} before, {load_after} after: the load "
        f"generator shares the CPU with the server, and so does anything else running.\n"
    )
    print(body)
    if args.write:
        write_section("Serving load", body)


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
        "--client",
        choices=["auto", "wrk", "httpx"],
        default="auto",
        help="load generator; auto: wrk when installed (apt-get install wrk), else httpx",
    )
    parser.add_argument("--wait-minutes", type=float, default=30, help="quiet-window wait cap")
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
