"""A quiet window on a shared machine: the CPU to one timed job, its load average recorded.

`with quiet_window("bench.variants gru", minutes=25, pause=PATTERN) as load:` waits for any
other job's window to end, writes /tmp/seq2seq-quiet (who, and until when), stops the
processes whose command line matches `pause` (SIGSTOP; never this process or its ancestors),
waits up to two minutes for the 1-minute load average to fall below 0.5, and records it in
`load.before`; on leaving, even by an error, it records `load.after`, continues the stopped
processes and removes the file. Stopped processes lose no work: they resume where they were.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench.timing import QUIET, wait_for_quiet

SETTLED = 0.5
"""A 1-minute load average below this counts as quiet."""
SETTLE_S = 120.0
"""How long a window waits for the load to settle before it starts anyway."""


@dataclass
class Load:
    """1-minute load averages at the start of the timed work and at its end."""

    before: float = 0.0
    after: float = 0.0


@contextmanager
def quiet_window(name: str, *, minutes: float, pause: str | None = None) -> Iterator[Load]:
    """The block runs with the machine to itself, as far as it can be (see the module)."""
    wait_for_quiet()
    end = datetime.now(timezone.utc) + timedelta(minutes=minutes)
    QUIET.write_text(f"{name} until {end:%H:%M} UTC\n", encoding="utf-8")
    stopped = _signal(_matching(pause), signal.SIGSTOP) if pause else []
    load = Load()
    try:
        load.before = settle()
        yield load
    finally:
        load.after = os.getloadavg()[0]
        _signal(stopped, signal.SIGCONT)
        QUIET.unlink(missing_ok=True)


def settle(limit_s: float = SETTLE_S) -> float:
    """Wait until the 1-minute load average is below `SETTLED` (at most `limit_s`); it."""
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] >= SETTLED and time.monotonic() < deadline:
        time.sleep(5.0)
    return os.getloadavg()[0]


def _matching(pattern: str) -> list[int]:
    """Ids of the processes whose command line contains `pattern`, this one and those that
    started it excepted (their own command lines may name the pattern)."""
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    own = _ancestors()
    return [int(pid) for pid in found.stdout.split() if int(pid) not in own]


def _ancestors() -> set[int]:
    """This process and its parents up to init (Linux /proc; elsewhere this one and its parent)."""
    pids, pid = {os.getpid(), os.getppid()}, os.getppid()
    while pid > 1 and Path(f"/proc/{pid}/stat").is_file():
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        pids.add(pid)
    return pids


def _signal(pids: list[int], number: signal.Signals) -> list[int]:
    """Send `number` to each of `pids`; those that got it."""
    reached = []
    for pid in pids:
        try:
            os.kill(pid, number)
        except ProcessLookupError:  # it ended meanwhile
            continue
        reached.append(pid)
    return reached
