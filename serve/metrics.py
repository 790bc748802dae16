"""Prometheus metrics of one app: requests, latency, batch sizes, queue depth, tokens.

Each app gets its own `CollectorRegistry`, so several apps (as in tests) never clash.
`MetricsMiddleware` counts every HTTP request by route template, method and status.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve.batching import BatchStats

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
RATE_WINDOW_S = 10.0


class Metrics:
    """The server's instruments, registered in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "seq2seq_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "seq2seq_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "seq2seq_batch_size_sentences",
            "Sentences decoded together per translate call (static batches)",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "seq2seq_batch_duration_seconds",
            "Time of one decoder step or translate call",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "seq2seq_queue_depth", "Requests waiting for translation", registry=self.registry
        )
        self.sentences = Counter(
            "seq2seq_translated_sentences", "Sentences translated", registry=self.registry
        )
        self.tokens = Counter(
            "seq2seq_source_tokens", "Source subwords translated", registry=self.registry
        )
        self.tokens_per_second = Gauge(
            "seq2seq_source_tokens_per_second",
            f"Source subwords translated per second over the last {RATE_WINDOW_S:.0f} s",
            registry=self.registry,
        )
        self.tokens_per_second.set_function(self._token_rate)
        self._recent: deque[tuple[float, int]] = deque()  # (monotonic time, tokens)
        self._lock = threading.Lock()  # batches are observed on the worker thread

    def observe_batch(self, stats: BatchStats) -> None:
        """Record one translate call or decoder step of the batcher."""
        self.batch_size.observe(stats.rows)
        self.batch_seconds.observe(stats.seconds)
        self.sentences.inc(stats.sentences)
        self.tokens.inc(stats.tokens)
        if stats.tokens:
            with self._lock:
                self._recent.append((time.monotonic(), stats.tokens))
                self._forget_old()

    def _token_rate(self) -> float:
        with self._lock:
            self._forget_old()
            return sum(tokens for _, tokens in self._recent) / RATE_WINDOW_S

    def _forget_old(self) -> None:
        """Drop entries older than the window (with the lock held): memory stays bounded."""
        horizon = time.monotonic() - RATE_WINDOW_S
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()

    def track_queue(self, depth: Callable[[], int]) -> None:
        """Read the queue depth at scrape time."""
        self.queue_depth.set_function(lambda: float(depth()))

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts requests and their latency; the route label is the matched path template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = _route_label(scope)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)


def _route_label(scope: Scope) -> str:
    """The route's path template, so unknown paths cannot blow up label cardinality."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
