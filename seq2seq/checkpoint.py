"""One self-describing checkpoint file: model config, weights, tokenizers, languages, metadata.

Files are read with `torch.load(weights_only=True)`, so loading never runs pickled code, and
written to a temporary file that is renamed into place, so a crash never leaves half a file
(a process killed mid-write leaves the temporary file; `remove_stale_temporaries` clears them).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seq2seq.config import ModelConfig
from seq2seq.model import Seq2Seq
from seq2seq.tokenizer import Tokenizer, TokenizerError, TokenizerPair

FORMAT = "seq2seq-checkpoint"
VERSION = 1
TEMPORARY_NAME = re.compile(r"\.(?P<target>.+\.pt)\.[a-z0-9_]{8}")
"""A temporary file of `save_checkpoint`: `.{name}.` and `tempfile.mkstemp`'s 8 characters."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or not usable by this version; names the file."""


@dataclass
class Checkpoint:
    """Everything needed to rebuild a model and translate with it (and, optionally, resume)."""

    config: ModelConfig
    model_state: dict[str, Tensor]
    tokenizers: TokenizerPair
    src_lang: str | None = None
    tgt_lang: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """Training facts worth showing: step, epoch, validation BLEU, data description."""
    training_state: dict[str, Any] = field(default_factory=dict)
    """Optimizer, scheduler, RNG and data position for `--resume`; empty in exported models."""

    @classmethod
    def from_model(cls, model: Seq2Seq, tokenizers: TokenizerPair, **fields: Any) -> Checkpoint:
        """Snapshot a model's current weights (moved to CPU) with its tokenizers."""
        state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
        return cls(config=model.config, model_state=state, tokenizers=tokenizers, **fields)

    def build_model(self) -> Seq2Seq:
        """A `Seq2Seq` with this checkpoint's config and weights, in eval mode, on CPU."""
        model = Seq2Seq(self.config)
        model.load_state_dict(self.model_state)
        return model.eval()


def check_shapes(config: ModelConfig, model_state: dict[str, Tensor]) -> None:
    """Raise `ValueError` naming the first tensor that `config`'s model lacks, does not expect or
    has in another shape. Reads shapes only, never the weights."""
    wanted = {name: tuple(t.shape) for name, t in empty_model(config).state_dict().items()}
    for name, tensor in model_state.items():
        if name not in wanted:
            raise ValueError(f"weights {name} are not part of the model its config describes")
        if tuple(tensor.shape) != wanted[name]:
            raise ValueError(
                f"weights {name} have shape {list(tensor.shape)}, its config needs "
                f"{list(wanted[name])}"
            )
    if missing := sorted(set(wanted) - set(model_state)):
        raise ValueError(f"weights {missing[0]} are missing ({len(missing)} tensors in all)")


def empty_model(config: ModelConfig) -> Seq2Seq:
    """The model `config` describes, without memory for its weights (on the meta device)."""
    with torch.device("meta"):
        return Seq2Seq(config)


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> None:
    """Write atomically: a temporary file in the same directory, fsync, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_config": checkpoint.config.to_dict(),
        "model_state": checkpoint.model_state,
        "src_tokenizer": checkpoint.tokenizers.src.proto,
        "tgt_tokenizer": checkpoint.tokenizers.tgt.proto,
        "src_lang": checkpoint.src_lang,
        "tgt_lang": checkpoint.tgt_lang,
        "metadata": checkpoint.metadata,
        "training_state": checkpoint.training_state,
    }
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that killed saves left in `directory`; returns their paths.

    Only for a directory no other process is saving into (a run directory as its run starts).
    """
    stale = [
        path
        for path in sorted(Path(directory).glob(".*.pt.*"))
        if TEMPORARY_NAME.fullmatch(path.name) and path.is_file() and not path.is_symlink()
    ]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | os.PathLike[str], *, weights: bool = True) -> Checkpoint:
    """Read and validate a checkpoint; any problem is a one-line `CheckpointError`.

    `weights=False` reads everything but the tensors, which are memory-mapped and never
    touched: `model_state` and `training_state` come back empty.
    """
    payload = _read(Path(path), mmap=not weights)
    try:
        checkpoint = _parse(payload)
        check_shapes(checkpoint.config, checkpoint.model_state)
        if not weights:
            checkpoint.model_state, checkpoint.training_state = {}, {}
            return checkpoint
        checkpoint.build_model()  # proves weights and config agree before anyone relies on them
    except (KeyError, TypeError, ValueError, RuntimeError, TokenizerError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: incompatible checkpoint: {reason}") from error
    return checkpoint


def _read(path: Path, *, mmap: bool = False) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises many types for damaged files
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {type(error).__name__})"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a seq2seq checkpoint")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('version')}, "
            f"this seq2seq reads version {VERSION}"
        )
    return payload


def _parse(payload: dict[str, Any]) -> Checkpoint:
    tokenizers = TokenizerPair(
        Tokenizer(payload["src_tokenizer"]), Tokenizer(payload["tgt_tokenizer"])
    )
    config = ModelConfig.from_dict(payload["model_config"])
    if (config.src_vocab_size, config.tgt_vocab_size) != (
        tokenizers.src.vocab_size,
        tokenizers.tgt.vocab_size,
    ):
        raise ValueError("model vocabulary sizes differ from the stored tokenizers")
    return Checkpoint(
        config=config,
        model_state=payload["model_state"],
        tokenizers=tokenizers,
        src_lang=payload.get("src_lang"),
        tgt_lang=payload.get("tgt_lang"),
        metadata=dict(payload.get("metadata") or {}),
        training_state=dict(payload.get("training_state") or {}),
    )
