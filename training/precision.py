"""`train.precision: auto`: train in bf16 where this machine runs the run's step faster in it.

bf16 autocast pays only where the hardware multiplies bfloat16 natively: on a CPU with
AVX512-BF16 the preset's step ran 1.35x to 1.8x its fp32 speed, on an Intel CPU with the
same flag but no AMX it ran 0.71x, and without either flag oneDNN cannot build a bf16 LSTM
at all. A flag check cannot tell these apart, so `auto` times the run's own step: a few
interleaved forward and backward passes of a freshly initialised copy of the model on a
batch of the configured size, fp32 against bf16. bf16 is chosen only when it is clearly
faster (`MARGIN`); weights and optimizer state stay fp32 either way, so checkpoints do not
change. A resumed run keeps the precision its first session chose, unless that was bf16 and
its device now has none.
"""

from __future__ import annotations

import random
import statistics
import time
from contextlib import nullcontext

import torch

from seq2seq import ModelConfig, Seq2Seq
from seq2seq.precision import cpu_bf16_autocast_works
from training.batching import Batch, collate
from training.config import LoopConfig
from training.loss import token_loss

MARGIN = 1.1
"""bf16 is chosen when an fp32 step takes at least this many times as long as a bf16 one."""
PROBE_LENGTH = 16
"""Tokens a sentence on each side of the probe batch (Multi30k's mean is about 15)."""
ROUNDS = 3
"""Timed steps per precision, after one untimed warm-up each."""


def resolve_precision(
    loop: LoopConfig, model: ModelConfig, device: torch.device, resumed: str | None = None
) -> tuple[str, str]:
    """The precision to train at and why: `loop.precision` unless it is 'auto'."""
    if loop.precision != "auto":
        return loop.precision, "as configured"
    capable = bf16_runs_on(device)
    if resumed == "fp32" or (resumed == "bf16" and capable):
        return resumed, "chosen when the run started"
    if not capable:
        return "fp32", f"this {device.type} has no bfloat16 arithmetic"
    try:
        fp32, bf16 = probe_step_seconds(model, loop, device)
    except RuntimeError as error:  # a bf16 kernel this device lacks
        return "fp32", f"bf16 failed in the probe ({str(error).splitlines()[0][:80]})"
    choice = "bf16" if fp32 >= MARGIN * bf16 else "fp32"
    return choice, f"probe: an fp32 step took {fp32 / bf16:.2f}x as long as a bf16 one"


def bf16_runs_on(device: torch.device) -> bool:
    """Whether `device` can run bf16 autocast at all (not whether it is faster)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu" and cpu_bf16_autocast_works()


def probe_step_seconds(
    config: ModelConfig, loop: LoopConfig, device: torch.device
) -> tuple[float, float]:
    """Median seconds of a forward and backward pass in fp32 and in bf16, interleaved.

    Runs on a fresh model under a forked RNG, so the run's seeded initialisation, dropout
    and batch order are the same whatever the probe did.
    """
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        model = Seq2Seq(config).to(device).train()
        batch = probe_batch(config, loop).to(device)
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for _ in range(ROUNDS + 1):
            for precision, seconds in times.items():
                seconds.append(_timed_step(model, batch, precision, device))
    return statistics.median(times["fp32"][1:]), statistics.median(times["bf16"][1:])


def probe_batch(config: ModelConfig, loop: LoopConfig) -> Batch:
    """Random sentences of `PROBE_LENGTH` tokens a side, as many as a batch of the run holds."""
    rows = max(1, min(loop.max_sentences, loop.batch_tokens // (PROBE_LENGTH + 1)))
    pick = random.Random(0)

    def sentences(vocab: int) -> list[list[int]]:
        return [[pick.randrange(4, vocab) for _ in range(PROBE_LENGTH)] for _ in range(rows)]

    return collate(sentences(config.src_vocab_size), sentences(config.tgt_vocab_size))


def _timed_step(model: Seq2Seq, batch: Batch, precision: str, device: torch.device) -> float:
    """Seconds of one forward pass, loss and backward pass at `precision`."""
    cast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if precision == "bf16"
        else nullcontext()
    )
    _synchronize(device)
    start = time.perf_counter()
    with cast:
        loss = token_loss(model, batch, label_smoothing=0.1)
    loss.backward()  # type: ignore[no-untyped-call]
    _synchronize(device)
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
