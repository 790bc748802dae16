"""Load generators for `bench.serve_load`: wrk when installed, else httpx, and a phase's figures.

wrk (one C thread) leaves the 2 cores to the server; httpx in Python needs about as much CPU
per request as the server does, so with it the client's cost shows in the server's figures.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.timing import QUIET

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
local path = "/translate"
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  if args[2] then path = args[2] end
end
local sent = 0
function request()
  sent = sent + 1
  local headers = {["Content-Type"] = "application/json"}
  return wrk.format("POST", path, headers, bodies[(sent - 1) % #bodies + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n", summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""
"""wrk hooks: POST the request bodies in turn (to /translate, or the path after the bodies
file), print one result line at the end."""


def wrk_load(
    url: str,
    texts: list[str],
    *,
    requests: int,
    concurrency: int,
    max_seconds: float,
    bodies: list[dict[str, object]] | None = None,
) -> Phase:
    """The same load from `wrk` (one C thread), which leaves the CPU to the server; `bodies`
    (JSON objects, sent in turn) instead of `{"text": ...}` for each of `texts`.

    wrk runs for a duration, not a count: a 3-second run at this concurrency measures the
    rate, then the phase runs long enough for about 1.15 x `requests` requests (at most
    `max_seconds`), so that it reaches `requests` even when the rate dips."""
    with tempfile.TemporaryDirectory() as folder:
        script, lines = Path(folder) / "load.lua", Path(folder) / "bodies.jsonl"
        script.write_text(WRK_SCRIPT)
        objects = bodies or [{"text": text} for text in texts]
        lines.write_text("".join(json.dumps(body) + "\n" for body in objects))
        probe = run_wrk(url, script, lines, concurrency=concurrency, seconds=3)
        seconds = min(max_seconds, max(3, round(1.15 * requests / max(probe.rate, 0.1))))
        return run_wrk(url, script, lines, concurrency=concurrency, seconds=seconds)


def run_wrk(
    url: str, script: Path, bodies: Path, *, concurrency: int, seconds: float, path: str = ""
) -> Phase:
    """One wrk run and what it measured; `path`: where to POST, if not /translate."""
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{round(seconds)}s",
        "--timeout",
        "60s",
        "-s",
        str(script),
        url,
        "--",
        str(bodies),
        *([path] if path else []),
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    sent, errors, duration, *micros = (int(x) for x in line.split()[1:])
    p50, p95, p99 = (x / 1000 for x in micros)
    return Phase("", concurrency, sent, errors, duration / 1e6, p50, p95, p99)
