"""The server under test for `bench.serve_load`: `seq2seq serve` in a subprocess, its memory
and its batching counters.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def rss_bytes(pid: int) -> int:
    """Resident set size of a process and its children (inference processes), from /proc;
    0 for a process that has just gone."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total = int(line.split()[1]) * 1024
        children = [
            int(child)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()
        ]
    except FileNotFoundError:
        return total
    return total + sum(rss_bytes(child) for child in children)


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """`seq2seq serve` in a subprocess on a free loopback port."""

    def __init__(
        self, args: argparse.Namespace, *, max_batch_size: int, options: dict[str, str]
    ) -> None:
        """`options`: `seq2seq serve` options over the benchmark's own (e.g. --inference);
        with `args.model` None, the server takes its models from `options` (e.g. --models)."""
        self.client: str = args.client
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {
            "--model": args.model,
            "--port": str(self.port),
            "--device": getattr(args, "device", "cpu"),
            "--beam-size": str(args.beam_size),
            "--threads": str(args.threads),
            "--max-batch-size": str(max_batch_size),
            "--max-wait-ms": str(args.max_wait_ms),
            **options,
        }
        command = [sys.executable, "-m", "seq2seq.cli", "serve"]
        command += [part for pair in settings.items() if pair[1] is not None for part in pair]
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


def batch_totals(url: str) -> tuple[float, float]:
    """(rows, decoder steps or translate calls) so far, from the server's Prometheus metrics:
    their ratio is the mean batch size."""
    values = {}
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        name, _, value = line.partition(" ")
        values[name] = value
    return (
        float(values.get("seq2seq_batch_size_sentences_sum", 0)),
        float(values.get("seq2seq_batch_size_sentences_count", 0)),
    )
