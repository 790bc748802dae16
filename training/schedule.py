"""Learning-rate schedules: linear warmup, then constant, inverse-sqrt, linear, cosine or plateau.

The rate is a pure function of the step (plus, for 'plateau', a factor cut on evaluations),
so the whole schedule state is a few numbers saved with every checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from training.config import OptimConfig

SCHEDULES = ("constant", "inverse_sqrt", "linear", "cosine", "plateau")


class Schedule:
    """Sets the optimizer's learning rate before every step."""

    def __init__(self, config: OptimConfig, *, max_steps: int) -> None:
        if config.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule must be one of {', '.join(SCHEDULES)}, "
                             f"got {config.schedule!r}")
        if config.schedule in ("linear", "cosine") and max_steps <= 0:
            raise ValueError(f"optim.schedule {config.schedule!r} needs train.max_steps > 0")
        self.config, self.max_steps = config, max_steps
        self.factor = 1.0
        self.best = -math.inf
        self.bad_evals = 0

    def rate(self, step: int) -> float:
        """Learning rate of optimizer step `step` (counting from 1)."""
        config = self.config
        warmup = max(config.warmup_steps, 0)
        if step <= warmup:
            return config.lr * step / warmup
        progress = min(1.0, (step - warmup) / max(1, self.max_steps - warmup))
        if config.schedule == "inverse_sqrt":
            decayed = config.lr * math.sqrt(max(warmup, 1) / step)
        elif config.schedule == "linear":
            decayed = config.lr * (1.0 - progress)
        elif config.schedule == "cosine":
            decayed = config.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            decayed = config.lr * self.factor
        return max(decayed, config.min_lr)

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set every parameter group's rate for `step`; returns it."""
        rate = self.rate(step)
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
