"""The arithmetic limit of this machine, measured, and the model's FLOPs per token.

The ceiling is the speed of one large matrix multiplication, the best case for the BLAS the
model's LSTMs and output projection run on. Elementwise work (gates, softmax) is not counted,
so a throughput at 100% of the ceiling is an upper bound that no real run reaches.

    python -m bench.ceiling [--notes TEXT] [--no-write]

prints the ceiling on 1 thread and on all of them: fp32 through MKL (what torch.mm takes)
and through oneDNN (what the model's LSTMs and output layer take, `seq2seq.onednn`), and
bf16 where the CPU has bfloat16 instructions.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from bench import report
from bench.timing import table, wait_for_quiet
from seq2seq import ModelConfig
from seq2seq.onednn import linear, onednn_enabled, onednn_works
from seq2seq.precision import cpu_bf16_autocast_works


def matmul_flops(
    *, size: int = 2048, dtype: torch.dtype = torch.float32, repeats: int = 7
) -> float:
    """Median FLOP/s of a `size`^3 matmul in `dtype` on the CPU (fp32 accumulate for bf16).
    fp32 multiplies as the model's output layer does (`seq2seq.onednn.linear`: oneDNN where
    it can, else MKL); bf16 through torch.mm, which takes oneDNN itself."""
    multiply = linear if dtype == torch.float32 else torch.mm
    a = torch.randn(size, size).to(dtype)  # [N, N]
    b = torch.randn(size, size).to(dtype)  # [N, N]
    multiply(a, b)  # warm-up: thread pool, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        multiply(a, b)  # [N, N]
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


def bf16_matmul_flops() -> float | None:
    """`matmul_flops` in bf16, or None on a CPU without bfloat16 instructions (where a bf16
    matmul is emulated, hundreds of times slower, and not worth minutes of benchmark time)."""
    return matmul_flops(dtype=torch.bfloat16) if cpu_bf16_autocast_works() else None


GATES = {"lstm": 4, "gru": 3}
"""Weight blocks of a layer's gates and candidate: i, f, g, o; or r, z, n."""


def recurrent_flops(config: ModelConfig, *, directions: int = 1) -> float:
    """Forward FLOPs of one time step of a recurrent stack (matmuls only), one row: 4 gate
    blocks per LSTM layer, 3 per GRU layer, every direction."""
    hidden, first, gates = config.hidden_size, config.embedding_size, GATES[config.cell]
    per_layer = [gates * hidden * (first + hidden)]
    per_layer += [gates * hidden * (directions * hidden + hidden)] * (config.num_layers - 1)
    return 2.0 * directions * sum(per_layer)


def encoder_flops(config: ModelConfig) -> float:
    """Forward FLOPs per source token: the encoder's stack, both ways when bidirectional."""
    return recurrent_flops(config, directions=2 if config.bidirectional_encoder else 1)


def decoder_flops(config: ModelConfig) -> float:
    """Forward FLOPs per target token: the decoder's stack plus the output projection."""
    return recurrent_flops(config) + 2.0 * config.hidden_size * config.tgt_vocab_size


def training_flops(config: ModelConfig, *, src_tokens: int, tgt_tokens: int) -> float:
    """Forward + backward (3x forward) FLOPs of a batch with these real token counts."""
    return 3.0 * (encoder_flops(config) * src_tokens + decoder_flops(config) * tgt_tokens)


def decoding_flops(config: ModelConfig, *, src_tokens: int, row_steps: int) -> float:
    """Forward FLOPs of encoding `src_tokens` and running `row_steps` decoder rows."""
    return encoder_flops(config) * src_tokens + decoder_flops(config) * row_steps


def describe(fp32: float, bf16: float | None) -> str:
    """Markdown lines stating the measured matmul ceilings."""
    bf16_text = (
        "bf16 not measured (this CPU has no bfloat16 instructions)"
        if bf16 is None
        else f"bf16 {bf16 / 1e9:.0f} GFLOP/s"
    )
    return (
        f"Matmul ceiling measured in this run (2048^3, median of 7): "
        f"fp32 {fp32 / 1e9:.0f} GFLOP/s, {bf16_text}. Percentages below are of the fp32 figure."
    )


def ceiling_rows(thread_counts: list[int], *, rounds: int = 3) -> list[list[object]]:
    """One row a multiply and thread count: GFLOP/s, best of `rounds` medians."""
    rows: list[list[object]] = []
    threads_before = torch.get_num_threads()
    ways = [("fp32, MKL (torch.mm)", torch.float32, False)]
    ways += [("fp32, oneDNN", torch.float32, True)] if onednn_works() else []
    ways += [("bf16, oneDNN", torch.bfloat16, True)] if cpu_bf16_autocast_works() else []
    for name, dtype, onednn in ways:
        for threads in thread_counts:
            torch.set_num_threads(threads)
            with onednn_enabled(onednn):
                rate = max(matmul_flops(dtype=dtype) for _ in range(rounds))
            rows.append([name, threads, f"{rate / 1e9:.0f}"])
    torch.set_num_threads(threads_before)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", default="", help="a paragraph added to the section")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    wait_for_quiet()
    cores, load = os.cpu_count() or 1, os.getloadavg()[0]
    rows = ceiling_rows(sorted({1, cores}))
    header = ["multiply", "threads", "GFLOP/s"]
    body = (
        f"A 2048^3 matrix multiply, median of 7 after a warm-up, best of 3 such "
        f"medians. Load average {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after.\n\n{table(header, rows)}"
    )
    body += f"\n\n{args.notes}" if args.notes else ""
    report.publish("Matmul ceiling of this CPU", body, write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
