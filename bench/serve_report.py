"""The `bench.serve_load` report: its table, the targets checked, and the notes under them."""

from __future__ import annotations

import argparse

from bench.load import CLIENTS, WRK_NOTE, Phase


def ratio_at_32(phases: list[Phase], unbatched: Phase) -> float:
    """Batched throughput at concurrency 32 (else the highest) over the unbatched server's."""
    at32 = next((p for p in phases if p.concurrency == 32), phases[-1])
    return at32.rate / unbatched.rate


def report(
    phases: list[Phase], others: list[Phase], memory: Phase, args: argparse.Namespace, source: str
) -> str:
    """The table, the targets, and how the run was made. `others`: unbatched, other variants."""
    at32 = next((p for p in phases if p.concurrency == 32), phases[-1])
    unbatched = others[0]
    compared = ", ".join(f"{p.name.split(' (')[0]} {p.rate / at32.rate:.2f}x" for p in others[1:])
    ratio = ratio_at_32(phases, unbatched)
    everything = [*phases, memory, *others]
    growth = (memory.rss_after - memory.rss_before) / memory.rss_before * 100
    header = (
        "| server | concurrency | requests | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| server RSS MiB (with its children) |\n|---|---|---|---|---|---|---|---|---|"
    )
    rows = "\n".join(p.row() for p in everything)
    checks = [
        (f"batching speed-up at concurrency {at32.concurrency}: {ratio:.1f}x", ratio >= 8),
        (
            f"p99 at concurrency {at32.concurrency}: {at32.p99:.0f} ms",
            at32.p99 < 500,
        ),
        (
            f"errors: {sum(p.errors for p in everything)}",
            all(p.errors == 0 for p in everything),
        ),
        (f"RSS growth over {memory.sent} requests: {growth:+.1f}%", growth < 10),
    ]
    targets = "\n".join(f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks)
    threads = args.threads or "default"
    text = (
        f"Model `{args.model}`, beam size {args.beam_size}, one {source} sentence per "
        f"request over loopback ({CLIENTS[args.client]}), server on {args.device.upper()} "
        f"with {threads} torch "
        f"thread(s) per decoding process unless the variant's name says otherwise, max wait "
        f"{args.max_wait_ms} ms; each phase is capped at "
        f"{args.max_seconds:.0f} s{WRK_NOTE if args.client == 'wrk' else ''}."
        f"\n\n{header}\n{rows}\n\nTargets (concurrency 32: >= 8x "
        f"the unbatched server, p99 < 500 ms, no errors; RSS growth < 10%):\n\n{targets}\n"
    )
    if compared:
        text += (
            f"\nThe other variants at concurrency {at32.concurrency}, in throughput against "
            f"{args.variant}'s: {compared}.\n"
        )
    return text


def model_note(one: float, many: float, server_ratio: float, variant: str) -> str:
    """What batching gains for the model alone (ms per sentence at batch 1 and 32)."""
    return (
        f"\nThe model alone, in this process with the server's thread count: {one:.1f} ms per "
        f"sentence at batch 1, {many:.1f} ms in static batches of 32 ({one / many:.1f}x, what "
        f"static batching can gain at most before any HTTP work); the server reached "
        f"{server_ratio:.1f}x ({variant}).\n"
    )


def load_note(before: str, after: str) -> str:
    """The machine's 1-minute load average around the run."""
    return (
        f"\nLoad average (1 min) {before} before, {after} after: the load "
        f"generator shares the CPU with the server, and so does anything else running.\n"
    )
