"""The arithmetic limit of this machine, measured, and the model's FLOPs per token.

The ceiling is the speed of one large matrix multiplication, the best case for the BLAS the
model's LSTMs and output projection run on. Elementwise work (gates, softmax) is not counted,
so a throughput at 100% of the ceiling is an upper bound that no real run reaches.
"""

from __future__ import annotations

import statistics
import time

import torch

from seq2seq import ModelConfig
from seq2seq.precision import cpu_bf16_autocast_works


def matmul_flops(
    *, size: int = 2048, dtype: torch.dtype = torch.float32, repeats: int = 7
) -> float:
    """Median FLOP/s of a `size`^3 matmul in `dtype` on the CPU (fp32 accumulate for bf16)."""
    a = torch.randn(size, size).to(dtype)  # [N, N]
    b = torch.randn(size, size).to(dtype)  # [N, N]
    torch.mm(a, b)  # warm-up: thread pool, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)  # [N, N]
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
