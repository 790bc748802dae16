"""The mixed soak of `bench.reliability`: many concurrent clients, bad requests among the good
ones, an inference process killed with SIGKILL in the middle; every request's fate counted.

A request is *lost* when no HTTP answer comes back at all (the connection closed or reset
without a response, or no answer within the client's timeout): the goal is none. The kill
turns the requests its process held into 503 with `Retry-After`; every other status is what
the request deserves (200, or 4xx with a reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

JSON = {"content-type": "application/json"}
BAD: list[tuple[str, bytes, dict[str, str]]] = [
    ("truncated JSON", b'{"text": "eins', JSON),
    ("not UTF-8", b'{"text": "\xff\xfe"}', JSON),
    ("nested 100,000 deep", b"[" * 100_000, JSON),
    ("5,000-digit number", b'{"text": "a", "beam_size": ' + b"9" * 5000 + b"}", JSON),
    ("wrong type", b'{"text": 5}', JSON),
    ("string for an integer", b'{"text": "a", "beam_size": "5"}', JSON),
    ("two inputs", b'{"text": "a", "q": "b"}', JSON),
    ("null", b'{"text": null}', JSON),
    ("control character", b'{"text": "a\\u0000b"}', JSON),
    ("lone surrogate", b'{"text": "\\ud800"}', JSON),
    ("too many texts", b'{"texts": [' + b'"a",' * 100 + b'"a"]}', JSON),
    ("unknown pair", b'{"q": "a", "source": "xx", "target": "yy"}', JSON),
    ("HTML without text", b'{"text": "<b></b>", "format": "html"}', JSON),
    ("plain text body", b"eins", {"content-type": "text/plain"}),
    ("form, not UTF-8", b"q=%FF", {"content-type": "application/x-www-form-urlencoded"}),
    ("beam too wide", b'{"text": "a", "beam_size": 9}', JSON),
]
"""Bad (or odd) requests mixed into the soak: each must get an answer, never a 5xx."""


@dataclass
class Tally:
    """What came back: statuses, lost requests (and why), 503s without `Retry-After`."""

    statuses: Counter[int] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    no_retry_after: int = 0
    seconds: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + sum(self.lost.values())

    def server_errors(self) -> int:
        """5xx other than 503 with `Retry-After`."""
        return sum(n for code, n in self.statuses.items() if code >= 500 and code != 503)


def requests_for(texts: list[str], count: int, *, bad_share: float, seed: int = 0) -> list[Any]:
    """`count` (content, headers) bodies: translations of `texts` in every input shape, with
    `bad_share` of them from `BAD`."""
    rng = random.Random(seed)
    bodies: list[Any] = []
    for number in range(count):
        if rng.random() < bad_share:
            _, content, headers = rng.choice(BAD)
            bodies.append((content, headers))
            continue
        text = texts[number % len(texts)]
        shape = rng.choice([{"text": text}, {"texts": [text, text]}, {"q": text, "beam_size": 2}])
        bodies.append((shape, None))
    return bodies


async def send_all(
    url: str,
    bodies: list[Any],
    *,
    concurrency: int,
    timeout: float = 60.0,
    tally: Tally | None = None,
) -> Tally:
    """Send `bodies` from `concurrency` keep-alive clients; count every outcome in `tally`."""
    tally, counter, started = tally or Tally(), itertools.count(), time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def client_loop(client: httpx.AsyncClient) -> None:
        while (number := next(counter)) < len(bodies):
            content, headers = bodies[number]
            try:
                if headers is None:
                    response = await client.post("/translate", json=content)
                else:
                    response = await client.post("/translate", content=content, headers=headers)
            except httpx.HTTPError as error:
                tally.lost[type(error).__name__] += 1
                continue
            tally.statuses[response.status_code] += 1
            if response.status_code == 503 and "retry-after" not in response.headers:
                tally.no_retry_after += 1

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    tally.seconds = time.perf_counter() - started
    return tally


async def kill_and_time_recovery(url: str, pid: int, tally: Tally, *, after: int) -> float:
    """Once `after` requests are answered, SIGKILL process `pid`; the seconds until `/ready`,
    503 while a new process loads, answers 200 again."""
    while tally.sent < after:
        await asyncio.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    killed = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        for wanted in (False, True):  # first the outage is seen, then its end
            while time.perf_counter() - killed < 120:
                with contextlib.suppress(httpx.HTTPError):
                    if ((await client.get("/ready")).status_code == 200) == wanted:
                        break
                await asyncio.sleep(0.02)
    return time.perf_counter() - killed


async def soak(
    url: str, bodies: list[Any], *, concurrency: int, child: int | None, kill_after: int
) -> tuple[Tally, float | None]:
    """The soak, with process `child` killed once `kill_after` requests are answered."""
    tally = Tally()
    load = asyncio.ensure_future(send_all(url, bodies, concurrency=concurrency, tally=tally))
    recovery = None
    if child is not None:
        recovery = await kill_and_time_recovery(url, child, tally, after=kill_after)
    return await load, recovery


def inference_processes(pid: int) -> list[int]:
    """The inference processes of server `pid`: its children started by multiprocessing's
    spawn (not its resource tracker)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return [
        child for child in found if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]
