"""Learning-rate schedules: linear warmup, then constant, inverse-sqrt, linear, cosine or plateau.

The rate is a pure function of the step and, for 'linear' and 'cosine' under a wall-clock
limit, of the share of that budget used (plus, for 'plateau', a factor cut on evaluations),
so the whole schedule state is a few numbers saved with every checkpoint. A run limited by
minutes thus decays to `min_lr` just as its time runs out, however fast the machine is.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from training.config import SCHEDULES, OptimConfig


class Schedule:
    """Sets the optimizer's learning rate before every step."""

    def __init__(self, config: OptimConfig, *, max_steps: int, timed: bool = False) -> None:
        """`max_steps` (0: none) and `timed` (a wall-clock limit is set) end the decay."""
        if config.schedule not in SCHEDULES:
            raise ValueError(
                f"optim.schedule must be one of {', '.join(SCHEDULES)}, got {config.schedule!r}"
            )
        if config.schedule in ("linear", "cosine") and max_steps <= 0 and not timed:
            raise ValueError(
                f"optim.schedule {config.schedule!r} needs train.max_steps, "
                "train.max_minutes or (without streaming) train.max_epochs"
            )
        self.config, self.max_steps = config, max_steps
        self.factor = 1.0
        self.best = -math.inf
        self.bad_evals = 0

    def rate(self, step: int, budget_used: float = 0.0) -> float:
        """Learning rate of optimizer step `step` (counting from 1), `budget_used` of the
        wall-clock limit (0 to 1) gone."""
        config = self.config
        warmup = max(config.warmup_steps, 0)
        if step <= warmup:
            return config.lr * step / warmup
        progress = min(1.0, max(self._step_progress(step, warmup), budget_used))
        if config.schedule == "inverse_sqrt":
            decayed = config.lr * math.sqrt(max(warmup, 1) / step)
        elif config.schedule == "linear":
            decayed = config.lr * (1.0 - progress)
        elif config.schedule == "cosine":
            decayed = config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            decayed = config.lr * self.factor
        return max(decayed, config.min_lr)

    def _step_progress(self, step: int, warmup: int) -> float:
        if self.max_steps <= 0:
            return 0.0
        return (step - warmup) / max(1, self.max_steps - warmup)

    def apply(self, optimizer: torch.optim.Optimizer, step: int, budget_used: float = 0.0) -> float:
        """Set every parameter group's rate for `step`; returns it."""
        rate = self.rate(step, budget_used)
        for group in optimizer.param_groups:
            group["lr"] = rate
        return rate

    def observe(self, metric: float) -> None:
        """'plateau': after `plateau_patience` evaluations without a better metric, cut the rate."""
        if metric > self.best:
            self.best, self.bad_evals = metric, 0
            return
        self.bad_evals += 1
        if self.config.schedule == "plateau" and self.bad_evals >= self.config.plateau_patience:
            self.factor *= self.config.plateau_factor
            self.bad_evals = 0

    def state_dict(self) -> dict[str, Any]:
        """The mutable part: plateau factor and its bookkeeping."""
        return {"factor": self.factor, "best": self.best, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict` output."""
        self.factor, self.best = float(state["factor"]), float(state["best"])
        self.bad_evals = int(state["bad_evals"])
