"""Learning check on a classic LSTM task: copy random symbol sequences through (h, c) alone.

The whole source must pass through the encoder's final state, so this fails if the hand-over,
the source reversal or the teacher forcing is broken.
"""

import random
import time

import pytest
import torch
from conftest import fit, make_batch

from seq2seq import ModelConfig, Seq2Seq
from seq2seq.search import greedy_search, max_lengths

pytestmark = pytest.mark.slow

SYMBOLS = range(4, 14)  # ten symbols after the four special ids
TIME_LIMIT_S = 60.0


def sequences(count: int, seed: int, *, shortest: int = 3, longest: int = 10) -> list[list[int]]:
    rng = random.Random(seed)
    return [
        [rng.choice(SYMBOLS) for _ in range(rng.randint(shortest, longest))] for _ in range(count)
    ]


def exact_match(model: Seq2Seq, data: list[list[int]]) -> float:
    src, src_len, _, _ = make_batch(data, data)
    outputs = greedy_search(model, src, src_len, max_len=max_lengths(src_len, a=1.0, b=2, cap=40))
    return sum(out == ref for out, ref in zip(outputs, data, strict=True)) / len(data)


def test_copy_task_reaches_95_percent_exact_match_within_a_minute() -> None:
    torch.manual_seed(0)
    train, held_out = sequences(20_000, seed=0), sequences(500, seed=1)
    model = Seq2Seq(
        ModelConfig(14, 14, embedding_size=32, hidden_size=128, num_layers=1, dropout=0.0)
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    start, accuracy, round_ = time.perf_counter(), 0.0, 0
    while accuracy < 0.95 and time.perf_counter() - start < TIME_LIMIT_S:
        fit(model, train, train, steps=100, batch_size=128, seed=round_, optimizer=optimizer)
        accuracy, round_ = exact_match(model, held_out), round_ + 1
    elapsed = time.perf_counter() - start
    print(f"copy task: {accuracy:.1%} exact match after {round_ * 100} steps in {elapsed:.1f} s")
    assert accuracy >= 0.95
    assert elapsed < TIME_LIMIT_S
