"""The training loop in one place: `fit` runs it, `train_step` is one step of it.

A step is teacher forcing: the batch's token loss (label-smoothed cross-entropy of the decoder
fed the reference), backward, gradient clipping, an optimizer step at the schedule's rate.
Around the steps `fit` logs, validates and saves on the configured steps, and stops at a limit
(steps, epochs, minutes), early stopping or a signal; the stop is agreed by all ranks every
step, so DDP processes always leave together. The run's state (model, optimizer, checkpoints,
validation) is the `Trainer` of `training.trainer`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from tqdm import tqdm

from training import distributed
from training.batching import Batch
from training.loss import token_loss
from training.trainer import Progress, Trainer


def fit(trainer: Trainer) -> str:
    """Train; returns why it stopped: max_steps, max_epochs, max_minutes, early_stopping, signal."""
    started, meter = time.monotonic(), Meter()
    trainer.session_start = started  # checkpoints written on the way store the time so far
    # From the checkpoint's count alone, so that every rank starts with the same rate.
    max_minutes = trainer.config.train.max_minutes
    trainer.budget_used = share_of_budget(trainer.progress.elapsed, max_minutes)
    bar = _bar(trainer)
    reason, validated_at = "max_epochs", -1
    for batch in batch_stream(trainer.batches, trainer.config.train.max_epochs):
        tokens, sentences = batch.num_tokens, len(batch.src_len)
        meter.add(train_step(trainer, batch), tokens, sentences)
        trainer.progress.tokens += tokens
        trainer.progress.sentences += sentences
        _show(bar, meter, trainer, started)
        if _periodic(trainer, meter, started):
            validated_at = trainer.progress.step
        reason = _stop_reason(trainer, started) or reason
        if reason != "max_epochs":
            break
    trainer.progress.elapsed += time.monotonic() - started
    trainer.session_start = None
    bar.close()
    _finish(trainer, reason, validated_at)
    return reason


def train_step(trainer: Trainer, batch: Batch) -> float:
    """One optimizer step on `batch`; returns its mean token loss."""
    batch = batch.to(trainer.context.device)
    trainer.wrapped.train()
    rate = trainer.schedule.apply(trainer.optimizer, trainer.progress.step + 1, trainer.budget_used)
    with trainer.autocast():
        loss = token_loss(
            trainer.wrapped, batch, label_smoothing=trainer.config.optim.label_smoothing
        )
    trainer.optimizer.zero_grad(set_to_none=True)
    trainer.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
    _clip(trainer)
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    trainer.progress.step += 1
    trainer.progress.history["lr"] = rate
    return float(loss.detach())


def _clip(trainer: Trainer) -> None:
    """Clip the gradients' global norm to optim.clip_norm (unscaled first under fp16)."""
    if trainer.config.optim.clip_norm > 0:
        trainer.scaler.unscale_(trainer.optimizer)
        torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), trainer.config.optim.clip_norm)


def _periodic(trainer: Trainer, meter: Meter, started: float) -> bool:
    """Log, validate or save when the step count says so; True when it validated."""
    config, step, is_main = trainer.config.train, trainer.progress.step, trainer.context.is_main
    if is_main and step % config.log_every == 0:
        _log(trainer, meter, started)
    if step % config.eval_every == 0:
        trainer.validate()
        return True
    if is_main and config.save_every and step % config.save_every == 0:
        trainer.save(trainer.run_dir / "last.pt")
    return False


def _stop_reason(trainer: Trainer, started: float) -> str:
    """Why to stop now ("" to go on), agreed by all ranks, which also agree on the budget used
    (the rate schedule reads it, and every rank must step with the same rate)."""
    config, progress = trainer.config.train, trainer.progress
    used = budget_used(progress, started, config.max_minutes)  # 0 without a time limit
    reasons = [
        ("signal", trainer.stop_signal != 0),
        ("early_stopping", progress.history.get("early_stop", 0.0) > 0),
        ("max_steps", 0 < config.max_steps <= progress.step),
        ("max_minutes", used >= 1.0),
    ]
    local = next((name for name, hit in reasons if hit), "")
    agreed = distributed.max_over_ranks(trainer.context, [float(bool(local)), used])
    stop, trainer.budget_used = agreed
    if not stop:
        return ""
    return local or "other_rank"


def _finish(trainer: Trainer, reason: str, validated_at: int) -> None:
    """Validate the final weights (unless interrupted or just done), save last.pt, draw curves."""
    if reason != "signal" and validated_at != trainer.progress.step:
        trainer.validate()
    elif trainer.context.is_main:
        trainer.save(trainer.run_dir / "last.pt")
    if trainer.context.is_main:
        trainer.log.write(
            {
                "step": trainer.progress.step,
                "stopped": reason,
                "elapsed_s": round(trainer.progress.elapsed, 1),
                "tokens": trainer.progress.tokens,
                "sentences": trainer.progress.sentences,
                "best_val_bleu": trainer.progress.best_bleu,
                "precision": trainer.config.train.precision,  # what `auto` chose
            }
        )
        print(
            f"stopped at step {trainer.progress.step} ({reason}); "
            f"best validation BLEU {trainer.progress.best_bleu:.2f}; "
            f"checkpoints in {trainer.run_dir}",
            file=sys.stderr,
        )


def batch_stream(batches: Any, max_epochs: int) -> Iterator[Batch]:
    """Batches across epochs until `max_epochs` (0: forever); `batches` keeps the position."""
    while max_epochs <= 0 or batches.epoch < max_epochs:
        yield from batches
        batches.next_epoch()


def time_left(progress: Progress, started: float, max_minutes: float) -> float:
    """Seconds of the wall-clock budget left (inf without one)."""
    if max_minutes <= 0:
        return math.inf
    return max_minutes * 60.0 - (progress.elapsed + time.monotonic() - started)


def budget_used(progress: Progress, started: float, max_minutes: float) -> float:
    """Share of the wall-clock budget gone now, 0 to 1 (0 without one)."""
    return share_of_budget(progress.elapsed + time.monotonic() - started, max_minutes)


def share_of_budget(seconds: float, max_minutes: float) -> float:
    """`seconds` as a share of a `max_minutes` budget, at most 1 (0 without a budget)."""
    if max_minutes <= 0:
        return 0.0
    return min(1.0, seconds / (max_minutes * 60.0))


class Meter:
    """Loss and throughput since the last log line, with the machine's load beside them."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start a new window."""
        self.loss, self.steps, self.started = 0.0, 0, time.monotonic()
        self.tokens = self.sentences = 0

    def add(self, loss: float, tokens: int, sentences: int) -> None:
        """Count one step."""
        self.loss, self.steps = self.loss + loss, self.steps + 1
        self.tokens, self.sentences = self.tokens + tokens, self.sentences + sentences

    def summary(self, world_size: int) -> dict[str, float]:
        """Mean loss, target tokens and sentences per second (all ranks) of the window, and the
        one-minute load average: a run on a machine busy with other work is slow, and says why."""
        seconds = max(time.monotonic() - self.started, 1e-9)
        return {
            "train_loss": round(self.loss / max(self.steps, 1), 4),
            "tokens_per_s": round(self.tokens * world_size / seconds, 1),
            "sentences_per_s": round(self.sentences * world_size / seconds, 1),
            "load_avg": round(os.getloadavg()[0], 2),
        }


def _log(trainer: Trainer, meter: Meter, started: float) -> None:
    progress = trainer.progress
    record: dict[str, Any] = {
        "step": progress.step,
        "epoch": trainer.batches.epoch,
        **meter.summary(trainer.context.world_size),
        "lr": progress.history.get("lr", 0.0),
        "elapsed_s": round(progress.elapsed + time.monotonic() - started, 1),
    }
    trainer.log.write(record)
    meter.reset()


def _bar(trainer: Trainer) -> tqdm[Any]:
    config = trainer.config.train
    total = config.max_steps if config.max_steps > 0 else None
    disable = not (config.progress and trainer.context.is_main and sys.stderr.isatty())
    return tqdm(
        total=total, initial=trainer.progress.step, unit="step", disable=disable, dynamic_ncols=True
    )


def _show(bar: tqdm[Any], meter: Meter, trainer: Trainer, started: float) -> None:
    if bar.disable:
        return
    bar.update(1)
    summary = meter.summary(trainer.context.world_size)
    left = time_left(trainer.progress, started, trainer.config.train.max_minutes)
    postfix = {
        "loss": f"{summary['train_loss']:.3f}",
        "tok/s": f"{summary['tokens_per_s']:.0f}",
        "load": f"{summary['load_avg']:.1f}",
    }
    if math.isfinite(left):
        postfix["left"] = f"{left / 60:.1f}m"
    bar.set_postfix(postfix, refresh=False)
