"""Where a training step of the preset spends its time, and what the bookkeeping around it costs.

Builds the model, optimizer and batches of `training/configs/multi30k_de_en.yaml` (its
tokenizers from `--model`, the preset's batch_tokens and max_sentences over Multi30k's
training pairs), runs the step as `training.loop.train_step` does (token loss with
label smoothing, backward, clipping, Adam) under `torch.profiler`, and reports each phase's
share and the operators that take the most time. Then it times writing `last.pt` (model and
optimizer state) as the loop does every `train.save_every` steps.

    python -m bench.step_profile --model models/multi30k_de_en.pt
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from bench.reference_model import encoded_pairs
from bench.report import write_section
from bench.timing import table, wait_for_quiet
from seq2seq import Seq2Seq, TokenizerPair, load_checkpoint
from seq2seq.allocator import keep_freed_memory
from training.batching import Batch, TokenBatchSampler, collate
from training.config import TrainConfig, load_config
from training.loss import token_loss
from training.trainer import build_optimizer, model_config

SECTION = "Training step profile (Multi30k de->en preset)"
PRESET = Path(__file__).resolve().parent.parent / "training/configs/multi30k_de_en.yaml"
PHASES = ("collate", "forward + loss", "backward", "clip", "optimizer")


def batches(config: TrainConfig, tokenizers: TokenizerPair, seed: int) -> Iterator[Batch]:
    """Training batches as the preset's sampler makes them, collated on demand (`collate`
    is timed as a phase, as the loop pays for it)."""
    pairs = encoded_pairs(tokenizers, "train")
    lengths = [(len(src), len(tgt)) for src, tgt in pairs]
    loop = config.train
    sampler = TokenBatchSampler(
        lengths, batch_tokens=loop.batch_tokens, max_sentences=loop.max_sentences, seed=seed
    )
    for indices in sampler:
        with record_function("collate"):
            batch = collate(*zip(*(pairs[i] for i in indices), strict=True))
        yield batch


def step(
    model: Seq2Seq, optimizer: torch.optim.Optimizer, batch: Batch, config: TrainConfig
) -> None:
    """One step as `training.loop.train_step` takes it in fp32 on the CPU, each phase labelled."""
    with record_function("forward + loss"):
        loss = token_loss(model, batch, label_smoothing=config.optim.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    with record_function("backward"):
        loss.backward()  # type: ignore[no-untyped-call]
    with record_function("clip"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.clip_norm)
    with record_function("optimizer"):
        optimizer.step()


@dataclass
class Profiled:
    """A profiled run of steps, and the model and optimizer it left."""

    prof: profile
    steps: int
    seconds: float
    model: Seq2Seq
    optimizer: torch.optim.Optimizer


def profiled(args: argparse.Namespace, config: TrainConfig) -> Profiled:
    """`args.steps` steps under the profiler, after `args.warmup` steps without it."""
    tokenizers = load_checkpoint(args.model).tokenizers
    torch.manual_seed(0)
    model = Seq2Seq(model_config(config, tokenizers)).train()
    optimizer = build_optimizer(config, model)
    stream = batches(config, tokenizers, seed=0)
    for _ in range(args.warmup):
        step(model, optimizer, next(stream), config)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        for _ in range(args.steps):
            step(model, optimizer, next(stream), config)
        seconds = time.perf_counter() - started
    return Profiled(prof, args.steps, seconds, model, optimizer)


def phase_rows(run: Profiled) -> list[list[object]]:
    """Each phase's milliseconds per step and share of the step's wall time."""
    totals = {event.key: event.cpu_time_total for event in run.prof.key_averages()}  # µs
    step_ms = run.seconds * 1000 / run.steps
    rows: list[list[object]] = []
    for phase in PHASES:
        ms = totals.get(phase, 0.0) / 1000 / run.steps
        rows.append([phase, f"{ms:.1f}", f"{ms / step_ms:.1%}"])
    return rows


def operator_rows(run: Profiled, top: int) -> list[list[object]]:
    """The operators with the most self CPU time per step, and their share of all of it."""
    events = [e for e in run.prof.key_averages() if e.key not in PHASES]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows: list[list[object]] = []
    for event in events[:top]:
        ms = event.self_cpu_time_total / 1000 / run.steps
        rows.append([f"`{event.key}`", f"{ms:.1f}", f"{event.self_cpu_time_total / total:.1%}"])
    return rows


def save_seconds(model: Seq2Seq, optimizer: torch.optim.Optimizer) -> tuple[float, float]:
    """Best of 3 seconds to write the model and optimizer state (what `last.pt` holds), MB."""
    with tempfile.TemporaryDirectory() as directory:
        path, times = Path(directory) / "last.pt", []
        for _ in range(3):
            started = time.perf_counter()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)
            times.append(time.perf_counter() - started)
        return min(times), path.stat().st_size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/multi30k_de_en.pt", help="its tokenizers")
    parser.add_argument("--steps", type=int, default=40, help="profiled steps")
    parser.add_argument("--warmup", type=int, default=5, help="steps before profiling")
    parser.add_argument("--top", type=int, default=12, help="operators listed")
    parser.add_argument("--no-write", dest="write", action="store_false", help="print only")
    args = parser.parse_args()
    config = load_config(PRESET, [])
    keep_freed_memory()  # as `seq2seq train` does
    wait_for_quiet()
    load_before = os.getloadavg()[0]
    run = profiled(args, config)
    body = report(args, config, run, load_before)
    print(body)
    if args.write:
        write_section(SECTION, body)


def report(args: argparse.Namespace, config: TrainConfig, run: Profiled, load_before: float) -> str:
    """The section: the setting, the phase and operator tables, the cost of `last.pt`."""
    save_s, megabytes = save_seconds(run.model, run.optimizer)
    step_s, every = run.seconds / run.steps, config.train.save_every
    return "\n".join(
        [
            f"The preset's model and batches (at most {config.train.batch_tokens} tokens, "
            f"{config.train.max_sentences} sentences), fp32, {torch.get_num_threads()} threads, "
            f"{run.steps} steps after {args.warmup} of warm-up: {step_s * 1000:.0f} ms a step "
            f"under the profiler. Load average {load_before:.2f} before, "
            f"{os.getloadavg()[0]:.2f} after.",
            "",
            table(["phase", "ms per step", "share of the step"], phase_rows(run)),
            "",
            table(["operator (self time)", "ms per step", "share"], operator_rows(run, args.top)),
            "",
            f"Writing `last.pt` (model and Adam state, {megabytes:.0f} MB): {save_s:.2f} s, best "
            f"of 3; the preset writes it every {every} steps, {save_s / (every * step_s):.1%} of "
            "the time of those steps.",
        ]
    )


if __name__ == "__main__":
    main()
