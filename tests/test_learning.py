"""Learning check on a classic LSTM task: copy random symbol sequences through (h, c) alone.

The whole source must pass through the encoder's final state, so this fails if the hand-over,
the source reversal or the teacher forcing is broken; a GRU and a bidirectional encoder (with
its bridge) must learn it too.
"""

import random
import time
from typing import Any

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


def learn_copying(*, max_steps: int, seconds: float, **options: Any) -> tuple[float, int, float]:
    """Train a copying model of `options` in rounds of 100 steps until 95% exact match, or
    `max_steps` or `seconds` run out: the accuracy, the steps and the seconds it took."""
    torch.manual_seed(0)
    train, held_out = sequences(20_000, seed=0), sequences(500, seed=1)
    sizes = {"embedding_size": 32, "hidden_size": 128, "num_layers": 1, "dropout": 0.0}
    model = Seq2Seq(ModelConfig(14, 14, **(sizes | options)))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    start, accuracy, steps = time.perf_counter(), 0.0, 0
    while accuracy < 0.95 and steps < max_steps and time.perf_counter() - start < seconds:
        fit(model, train, train, steps=100, batch_size=128, seed=steps // 100, optimizer=optimizer)
        accuracy, steps = exact_match(model, held_out), steps + 100
    elapsed = time.perf_counter() - start
    print(f"copy task {options}: {accuracy:.1%} exact match after {steps} steps in {elapsed:.1f} s")
    return accuracy, steps, elapsed


def test_copy_task_reaches_95_percent_exact_match_within_a_minute() -> None:
    accuracy, _, elapsed = learn_copying(max_steps=100_000, seconds=TIME_LIMIT_S)
    assert accuracy >= 0.95
    assert elapsed < TIME_LIMIT_S


@pytest.mark.slow
@pytest.mark.parametrize(
    ("options", "steps"),
    [({"cell": "gru"}, 1500), ({"bidirectional_encoder": True}, 2000)],
    ids=["gru", "bidirectional"],
)
def test_gru_and_bidirectional_encoders_learn_it_too(options: dict[str, Any], steps: int) -> None:
    """Within a step budget (seeded, so the same on every machine): the LSTM needs about 600,
    a GRU about 900, a bidirectional LSTM encoder about 1,300 while its bridge learns."""
    accuracy, _, _ = learn_copying(max_steps=steps, seconds=3 * TIME_LIMIT_S, **options)
    assert accuracy >= 0.95
