"""Shared by the benchmark scripts: describe the machine and update one BENCHMARKS.md section."""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEvery section is written by the script it names; rerun it to refresh.\n"


def machine() -> str:
    """One line: CPU model and vector instructions, cores, torch version and threads, GPU if
    any."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        text = cpuinfo.read_text()
        match = re.search(r"model name\s*:\s*(.+)", text)
        cpu = match.group(1).strip() if match else cpu
        flags = re.search(r"flags\s*:\s*(.+)", text)
        cpu += f" ({vector_units(set(flags.group(1).split()) if flags else set())})"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}"
    )


def vector_units(flags: set[str]) -> str:
    """The widest vector instructions among a CPU's flags, and whether it has bfloat16 ones
    (they decide what bf16 autocast costs)."""
    if "avx512_bf16" in flags:
        return "AVX-512 with BF16"
    if "avx512f" in flags:
        return "AVX-512, no BF16"
    return "AVX2, no AVX-512" if "avx2" in flags else "no AVX2"


def command() -> str:
    """The command line that ran this script, for others to repeat."""
    script = f"python -m bench.{Path(sys.argv[0]).stem}"
    return " ".join([script, *(shlex.quote(arg) for arg in sys.argv[1:])])


def write_section(name: str, body: str, *, command_line: str | None = None) -> None:
    """Replace (or append) the section `name` of BENCHMARKS.md with `body` and its provenance."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- bench:{name} -->\n## {name}\n\n"
        f"- command: `{command_line or command()}`\n- machine: {machine()}\n- date: {stamp}\n\n"
        f"{body.strip()}\n<!-- /bench:{name} -->\n"
    )
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else HEADER
    pattern = re.compile(
        rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n", re.DOTALL
    )
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else f"{text}\n{section}"
    BENCHMARKS.write_text(text)


def publish(name: str, body: str, *, write: bool) -> None:
    """Print a section's body and, when `write`, put it in BENCHMARKS.md (the scripts'
    `--no-write` only prints)."""
    print(body)
    if write:
        write_section(name, body)
