"""Small helpers shared by the benchmark scripts: clocks, medians, memory, table formatting."""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

QUIET = Path("/tmp/seq2seq-quiet")
"""While this file exists another job on the machine needs the CPU quiet: benchmarks wait."""


def clock(device: torch.device | None = None) -> float:
    """`time.perf_counter`, after waiting for queued GPU work when timing on CUDA."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def seconds(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    """The median, as used for every reported figure (the machine is shared, so noisy)."""
    return float(statistics.median(values))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def wait_for_quiet(poll_s: float = 10.0) -> None:
    """Block while the quiet-window file exists (saying so once), so no timing overlaps it;
    a window opened by `$SEQ2SEQ_QUIET_OWNER` (its first word) is this job's own."""
    if QUIET.exists():
        print(f"{QUIET} exists: waiting for the quiet window to end", flush=True)
    while QUIET.exists() and not own_window():
        time.sleep(poll_s)


def own_window() -> bool:
    """The quiet window was opened for this job (see `wait_for_quiet`)."""
    owner = os.environ.get("SEQ2SEQ_QUIET_OWNER", "")
    try:
        return bool(owner) and QUIET.read_text().split()[:1] == [owner]
    except (FileNotFoundError, IndexError):
        return False
