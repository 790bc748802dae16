"""Learning-rate schedules: warmup, decay by steps, epochs or the wall-clock budget, plateau."""

from __future__ import annotations

import time

import pytest
from conftest import TINY

from training.config import OptimConfig, load_config
from training.loop import budget_used, share_of_budget
from training.schedule import Schedule
from training.trainer import Progress, decay_steps


def test_schedules_warm_up_decay_and_cut_on_plateau() -> None:
    inverse = Schedule(OptimConfig(lr=1.0, warmup_steps=4, schedule="inverse_sqrt"), max_steps=0)
    assert [inverse.rate(step) for step in (1, 4, 16)] == [0.25, 1.0, 0.5]
    cosine = Schedule(
        OptimConfig(lr=1.0, warmup_steps=0, schedule="cosine", min_lr=0.1), max_steps=10
    )
    assert cosine.rate(10) == pytest.approx(0.1)
    plateau = Schedule(
        OptimConfig(
            lr=1.0, warmup_steps=0, schedule="plateau", plateau_patience=1, plateau_factor=0.5
        ),
        max_steps=0,
    )
    for bleu in (10.0, 12.0, 11.0):
        plateau.observe(bleu)
    assert plateau.rate(5) == 0.5
    restored = Schedule(plateau.config, max_steps=0)
    restored.load_state_dict(plateau.state_dict())
    assert restored.rate(5) == 0.5


def test_linear_decay_follows_the_wall_clock_budget_when_there_is_no_step_limit() -> None:
    linear = OptimConfig(lr=1.0, warmup_steps=2, schedule="linear", min_lr=0.01)
    with pytest.raises(ValueError, match=r"needs train\.max_steps, train\.max_minutes or"):
        Schedule(linear, max_steps=0)
    timed = Schedule(linear, max_steps=0, timed=True)
    assert timed.rate(1, budget_used=0.9) == 0.5  # warmup goes by steps
    assert [timed.rate(50, used) for used in (0.0, 0.25, 1.0)] == [1.0, 0.75, 0.01]
    both = Schedule(linear, max_steps=12, timed=True)
    assert both.rate(7, budget_used=0.25) == 0.5  # the step limit is nearer: 5 of 10 steps
    assert budget_used(Progress(elapsed=30.0), time.monotonic(), max_minutes=1.0) == (
        pytest.approx(0.5, abs=0.01)
    )
    assert budget_used(Progress(elapsed=90.0), time.monotonic(), max_minutes=1.0) == 1.0
    assert budget_used(Progress(elapsed=90.0), time.monotonic(), max_minutes=0.0) == 0.0
    assert share_of_budget(45.0, max_minutes=1.0) == 0.75  # a resumed run's first step


def test_linear_decay_by_epochs_ends_after_the_last_epochs_batches() -> None:
    by_epochs = load_config(TINY, ["--train.max_steps=0", "--train.max_epochs=3"])
    assert decay_steps(by_epochs, [None] * 7) == 21
    assert decay_steps(by_epochs, iter([])) == 0  # streamed batches: their number is unknown
    by_steps = load_config(TINY, ["--train.max_steps=50", "--train.max_epochs=3"])
    assert decay_steps(by_steps, [None] * 7) == 50
