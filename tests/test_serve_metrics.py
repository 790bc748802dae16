"""Prometheus metrics: batch instruments, the token-rate window, per-app registries, and the
middleware's request counts (route templates only, failures counted as 500)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

import serve.metrics
from serve.batching import BatchStats
from serve.metrics import RATE_WINDOW_S, Metrics, MetricsMiddleware


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text, keyed by name and sorted labels."""
    text = metrics.render()[0].decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_batches_fill_the_counters_and_histograms() -> None:
    metrics = Metrics()
    metrics.observe_batch(BatchStats(sentences=3, tokens=40, seconds=0.02, rows=3))
    metrics.observe_batch(BatchStats(sentences=1, tokens=10, seconds=0.01, rows=1))
    values = samples(metrics)
    assert values[("seq2seq_translated_sentences_total", ())] == 4
    assert values[("seq2seq_source_tokens_total", ())] == 50
    assert values[("seq2seq_batch_size_sentences_count", ())] == 2
    assert values[("seq2seq_batch_size_sentences_bucket", (("le", "2.0"),))] == 1
    assert values[("seq2seq_batch_size_sentences_bucket", (("le", "4.0"),))] == 2
    assert values[("seq2seq_source_tokens_per_second", ())] == pytest.approx(50 / RATE_WINDOW_S)


def test_token_rate_forgets_batches_older_than_its_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(serve.metrics.time, "monotonic", lambda: now[0])
    metrics = Metrics()
    for _ in range(100):
        metrics.observe_batch(BatchStats(sentences=1, tokens=7, seconds=0.0, rows=1))
    now[0] += RATE_WINDOW_S + 1
    metrics.observe_batch(BatchStats(sentences=1, tokens=5, seconds=0.0, rows=1))
    assert samples(metrics)[("seq2seq_source_tokens_per_second", ())] == 5 / RATE_WINDOW_S
    assert len(metrics._recent) == 1  # memory stays bounded however long the server runs
    now[0] += RATE_WINDOW_S + 1
    assert samples(metrics)[("seq2seq_source_tokens_per_second", ())] == 0


def test_queue_depth_is_read_when_scraped_and_apps_do_not_share_registries() -> None:
    first, second = Metrics(), Metrics()  # the same metric names, registered twice
    waiting = [2]
    first.track_queue(lambda: waiting[0])
    assert samples(first)[("seq2seq_queue_depth", ())] == 2
    waiting[0] = 5
    assert samples(first)[("seq2seq_queue_depth", ())] == 5
    assert samples(second)[("seq2seq_queue_depth", ())] == 0


def test_middleware_counts_by_route_template_and_counts_failures_as_500() -> None:
    app = FastAPI()

    @app.get("/items/{item}")
    def item(item: int) -> dict[str, int]:
        return {"item": item}

    @app.get("/broken")
    def broken() -> None:
        raise RuntimeError("boom")

    metrics = Metrics()
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    with TestClient(app, raise_server_exceptions=False) as client:
        for path in ("/items/1", "/items/2", "/items/x", "/nowhere/1", "/nowhere/2", "/broken"):
            client.get(path)
    values = samples(metrics)

    def requests(route: str, status: str) -> float:
        labels = (("method", "GET"), ("route", route), ("status", status))
        return values.get(("seq2seq_http_requests_total", labels), 0.0)

    assert requests("/items/{item}", "200") == 2
    assert requests("/items/{item}", "422") == 1
    assert requests("unmatched", "404") == 2  # unknown paths share one label
    assert requests("/broken", "500") == 1
    latency = ("seq2seq_http_request_duration_seconds_count", (("route", "/items/{item}"),))
    assert values[latency] == 3
