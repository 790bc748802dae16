"""A training run's state: model, optimizer, schedule, scaler, counters, validation and checkpoints.

`Trainer` keeps `best.pt` (best validation BLEU) and `last.pt` (everything needed to `--resume`
exactly); `training.loop` drives it step by step.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from seq2seq import Checkpoint, ModelConfig, Seq2Seq, TokenizerPair, save_checkpoint
from seq2seq.checkpoint import load_checkpoint
from seq2seq.precision import cpu_bf16_autocast_works
from seq2seq.shortlist import Shortlist
from training import distributed
from training.config import TrainConfig
from training.metrics import MetricsLog
from training.schedule import Schedule
from training.state import capture_rng, restore_rng
from training.validation import Validator


@dataclass
class Progress:
    """Counters saved in `last.pt` so a resumed run continues where it stopped."""

    step: int = 0
    best_bleu: float = -1.0
    bad_evals: int = 0
    elapsed: float = 0.0
    tokens: int = 0
    sentences: int = 0
    history: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Owns the model, optimizer, schedule and batches of one run."""

    def __init__(
        self,
        config: TrainConfig,
        tokenizers: TokenizerPair,
        batches: Any,
        validator: Validator,
        context: distributed.Context,
        shortlist: Shortlist | None = None,
    ) -> None:
        if config.train.precision == "auto":
            raise ValueError("train.precision auto is resolved before a Trainer is built")
        self.config, self.tokenizers, self.context = config, tokenizers, context
        self.shortlist = shortlist  # written into every checkpoint
        self.batches, self.validator = batches, validator
        self.run_dir = Path(config.run_dir)
        self.model = Seq2Seq(model_config(config, tokenizers)).to(context.device)
        self.wrapped = self._wrap(self.model)
        self.optimizer = build_optimizer(config, self.model)
        self.schedule = Schedule(
            config.optim, max_steps=decay_steps(config, batches), timed=config.train.max_minutes > 0
        )
        self.scaler = self._scaler()
        self.progress = Progress()
        self.budget_used = 0.0  # share of train.max_minutes gone, agreed by all ranks
        self.log = MetricsLog(self.run_dir)
        self.stop_signal = 0
        self.session_start: float | None = None  # time.monotonic() when `fit` began, in `fit`

    def _wrap(self, model: Seq2Seq) -> torch.nn.Module:
        """DistributedDataParallel around the model under torchrun, else the model itself."""
        if not self.context.distributed:
            return model
        device = self.context.device
        device_ids = [device] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def _scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, active only for fp16 (which needs CUDA)."""
        return torch.amp.GradScaler("cuda", enabled=self.config.train.precision == "fp16")

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16/fp16 autocast as configured, or nothing for fp32."""
        precision = self.config.train.precision
        if precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.context.device.type, dtype=dtype)

    def validate(self) -> dict[str, Any]:
        """Rank 0: validation loss and BLEU; saves best.pt when BLEU improved, then last.pt."""
        record: dict[str, Any] = {}
        if self.context.is_main:
            with self.autocast():
                record = self.validator.run(self.model)
            record = {"step": self.progress.step, **record}
            self._track_best(record)
            self.log.write(record)
            self.log.plot()
            self.save(self.run_dir / "last.pt")
            self._keep_step_checkpoint()
        stop = distributed.broadcast_flag(self.context, self._patience_over())
        self.progress.history["early_stop"] = float(stop)
        return record

    def _track_best(self, record: dict[str, Any]) -> None:
        self.schedule.observe(record["val_bleu"])
        if record["val_bleu"] > self.progress.best_bleu:
            self.progress.best_bleu, self.progress.bad_evals = record["val_bleu"], 0
            self.save(self.run_dir / "best.pt", export=True, extra={"val": record})
        else:
            self.progress.bad_evals += 1

    def _keep_step_checkpoint(self) -> None:
        """Export this step's model as step-<step>.pt and delete all but the newest `keep`."""
        keep = self.config.train.keep_checkpoints
        if keep <= 0:
            return
        self.save(self.run_dir / f"step-{self.progress.step}.pt", export=True)
        for old in step_checkpoints(self.run_dir)[:-keep]:
            old.unlink(missing_ok=True)

    def _patience_over(self) -> bool:
        patience = self.config.train.early_stopping
        return patience > 0 and self.progress.bad_evals >= patience

    def save(
        self, path: Path, *, export: bool = False, extra: dict[str, Any] | None = None
    ) -> None:
        """Atomically write a checkpoint; `export` leaves out the resume state."""
        metadata = {
            "step": self.progress.step,
            "epoch": self.batches.epoch,
            "best_val_bleu": self.progress.best_bleu,
            "elapsed_s": round(self.elapsed(), 1),
            "train_config": self.config.to_dict(),
            **(extra or {}),
        }
        checkpoint = Checkpoint.from_model(
            self.model,
            self.tokenizers,
            src_lang=self.config.data.src_lang,
            tgt_lang=self.config.data.tgt_lang,
            metadata=metadata,
            training_state={} if export else self.training_state(),
            shortlist=self.shortlist,
        )
        save_checkpoint(checkpoint, path)

    def training_state(self) -> dict[str, Any]:
        """Optimizer, schedule, scaler, RNG, data position and counters (tensors and primitives)."""
        progress = self.progress
        return {
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng(),
            "batches": self.batches.state_dict(),
            "progress": {
                "step": progress.step,
                "best_bleu": progress.best_bleu,
                "bad_evals": progress.bad_evals,
                "elapsed": self.elapsed(),
                "tokens": progress.tokens,
                "sentences": progress.sentences,
            },
            "world_size": self.context.world_size,
        }

    def elapsed(self) -> float:
        """Seconds of training so far, those of the running `fit` included."""
        if self.session_start is None:
            return self.progress.elapsed
        return self.progress.elapsed + time.monotonic() - self.session_start

    def resume(self, path: Path) -> None:
        """Load weights and the complete training state of `path` (a last.pt)."""
        checkpoint = load_checkpoint(path)
        state = checkpoint.training_state
        if not state:
            raise ValueError(f"{path}: has no training state to resume from (an exported model?)")
        if state["world_size"] != self.context.world_size:
            raise ValueError(
                f"{path}: written by {state['world_size']} processes, "
                f"resuming with {self.context.world_size}; use the same count"
            )
        self.model.load_state_dict(checkpoint.model_state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.batches.load_state_dict(state["batches"])
        self.progress = Progress(**state["progress"])
        restore_rng(state["rng"])


def step_checkpoints(run_dir: Path) -> list[Path]:
    """The run's kept step-<step>.pt models, oldest first."""
    return sorted(run_dir.glob("step-*.pt"), key=_step_of)


def _step_of(path: Path) -> int:
    """The step in a `step-<step>.pt` name (-1 for a name that has none)."""
    digits = path.stem.removeprefix("step-")
    return int(digits) if digits.isdigit() else -1


def model_config(config: TrainConfig, tokenizers: TokenizerPair) -> ModelConfig:
    """The network's config: the preset's sizes and the tokenizers' vocabularies."""
    return ModelConfig.from_sizes(
        tokenizers.src.vocab_size, tokenizers.tgt.vocab_size, config.model
    )


def decay_steps(config: TrainConfig, batches: Any) -> int:
    """Where a linear or cosine decay ends by steps: train.max_steps, else train.max_epochs
    of batches when their number is known (not when streaming), else 0 (none)."""
    loop = config.train
    if loop.max_steps > 0:
        return loop.max_steps
    if loop.max_epochs > 0 and hasattr(batches, "__len__"):
        return loop.max_epochs * len(batches)
    return 0


def build_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Adam or AdamW as configured (the rate is set by the schedule every step)."""
    optim = config.optim
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    if optim.optimizer not in kinds:
        raise ValueError(f"optim.optimizer must be adam or adamw, got {optim.optimizer!r}")
    if len(optim.betas) != 2:
        raise ValueError(f"optim.betas must have two values, got {optim.betas}")
    betas = (optim.betas[0], optim.betas[1])
    optimizer: torch.optim.Optimizer = kinds[optim.optimizer](
        model.parameters(), lr=optim.lr, betas=betas, weight_decay=optim.weight_decay, fused=True
    )  # one kernel over all parameters, on CPU as on CUDA
    return optimizer


def check_training_precision(precision: str, device: torch.device) -> None:
    """Fail before training starts, in one line, where `device` cannot train at `precision`."""
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("train.precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    if precision == "bf16" and device.type == "cpu" and not cpu_bf16_autocast_works():
        raise ValueError(
            "train.precision bf16 needs a CPU with bfloat16 instructions "
            "(AVX512-BF16 or AMX) and this one has none; use fp32"
        )
