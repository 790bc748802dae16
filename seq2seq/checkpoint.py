"""One self-describing checkpoint file: model config, weights, tokenizers, languages, metadata.

The model is one `Seq2Seq` or an `Ensemble` of them (`join_checkpoints` makes one from several
files); both load the same way. Files written before GRU cells existed named the recurrent
layers `lstm`; their weights are read under today's name, `rnn`.

Files are read with `torch.load(weights_only=True)`, so loading never runs pickled code, and
written to a temporary file that is renamed into place, so a crash never leaves half a file
(a process killed mid-write leaves the temporary file; `remove_stale_temporaries` clears them).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seq2seq.config import ModelConfig
from seq2seq.ensemble import AnyConfig, Ensemble, EnsembleConfig, build_model, config_from_dict
from seq2seq.model import Seq2Seq
from seq2seq.shortlist import Shortlist
from seq2seq.tokenizer import Tokenizer, TokenizerError, TokenizerPair

FORMAT = "seq2seq-checkpoint"
VERSION = 1
TEMPORARY_NAME = re.compile(r"\.(?P<target>.+\.pt)\.[a-z0-9_]{8}")
"""A temporary file of `save_checkpoint`: `.{name}.` and `tempfile.mkstemp`'s 8 characters."""
RENAMED = {"encoder.lstm.": "encoder.rnn.", "decoder.lstm.": "decoder.rnn."}
"""Weight-name prefixes of files written before GRU cells existed, and their names now."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or not usable by this version; names the file."""


@dataclass
class Checkpoint:
    """Everything needed to rebuild a model and translate with it (and, optionally, resume)."""

    config: AnyConfig
    """One model's config, or an ensemble's (its members' configs)."""
    model_state: dict[str, Tensor]
    tokenizers: TokenizerPair
    src_lang: str | None = None
    tgt_lang: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """Training facts worth showing: step, epoch, validation BLEU, data description."""
    training_state: dict[str, Any] = field(default_factory=dict)
    """Optimizer, scheduler, RNG and data position for `--resume`; empty in exported models."""
    shortlist: Shortlist | None = None
    """Each source piece's likeliest target pieces, for `--shortlist` decoding (optional)."""
    parameters: int = 0
    """Weights in the model, counted from `model_state` when the checkpoint is made (kept when
    `load_checkpoint(weights=False)` leaves the weights out)."""

    def __post_init__(self) -> None:
        if self.model_state:
            self.parameters = parameter_count(self.model_state)

    @classmethod
    def from_model(
        cls, model: Seq2Seq | Ensemble, tokenizers: TokenizerPair, **fields: Any
    ) -> Checkpoint:
        """Snapshot a model's current weights (moved to CPU) with its tokenizers."""
        state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
        return cls(config=model.config, model_state=state, tokenizers=tokenizers, **fields)

    def build_model(self) -> Seq2Seq | Ensemble:
        """The `Seq2Seq` (or `Ensemble`) with this checkpoint's config and weights, in eval
        mode, on CPU."""
        model = build_model(self.config)
        model.load_state_dict(self.model_state)
        return model.eval()

    def members(self) -> list[tuple[ModelConfig, dict[str, Tensor]]]:
        """Config and weights of each model: the one, or every member of an ensemble."""
        if isinstance(self.config, ModelConfig):
            return [(self.config, self.model_state)]
        found: list[tuple[ModelConfig, dict[str, Tensor]]] = []
        for index, config in enumerate(self.config.members):
            prefix = f"members.{index}."
            state = self.model_state.items()
            found.append((config, {k[len(prefix) :]: v for k, v in state if k.startswith(prefix)}))
        return found


def join_checkpoints(checkpoints: Sequence[Checkpoint], names: Sequence[str]) -> Checkpoint:
    """One checkpoint of the ensemble of `checkpoints` (an ensemble among them gives its members).

    They must share tokenizers and languages: `ValueError` naming the two files (`names`) that
    do not. The metadata lists each member's file, step and best validation BLEU.
    """
    first = checkpoints[0]
    for checkpoint, name in zip(checkpoints[1:], names[1:], strict=True):
        _check_joinable(first, checkpoint, names[0], name)
    members = [member for checkpoint in checkpoints for member in checkpoint.members()]
    state = {
        f"members.{index}.{key}": value
        for index, (_, weights) in enumerate(members)
        for key, value in weights.items()
    }
    described = [
        entry
        for checkpoint, name in zip(checkpoints, names, strict=True)
        for entry in _described(checkpoint, name)
    ]
    return Checkpoint(
        config=EnsembleConfig(tuple(config for config, _ in members)),
        model_state=state,
        tokenizers=first.tokenizers,
        src_lang=first.src_lang,
        tgt_lang=first.tgt_lang,
        metadata={"ensemble": described},
        shortlist=first.shortlist,  # the tokenizers are shared, so it fits every member
    )


def load_joined(paths: Sequence[str | os.PathLike[str]]) -> Checkpoint:
    """The checkpoint of the one path, or the ensemble of several (`join_checkpoints`);
    `CheckpointError` or `ValueError` with a one-line reason."""
    checkpoints = [load_checkpoint(path) for path in paths]
    if len(checkpoints) == 1:
        return checkpoints[0]
    return join_checkpoints(checkpoints, [str(path) for path in paths])


def _check_joinable(first: Checkpoint, other: Checkpoint, first_name: str, name: str) -> None:
    for side in ("src", "tgt"):
        if getattr(first.tokenizers, side).proto != getattr(other.tokenizers, side).proto:
            kind = "source" if side == "src" else "target"
            raise ValueError(
                f"{name} has another {kind} tokenizer than {first_name}: "
                "the models of an ensemble must share their tokenizers"
            )
    if (first.src_lang, first.tgt_lang) != (other.src_lang, other.tgt_lang):
        raise ValueError(f"{name} and {first_name} translate different language pairs")


def _described(checkpoint: Checkpoint, name: str) -> list[dict[str, Any]]:
    """What an ensemble's metadata says of each model `checkpoint` adds."""
    if isinstance(checkpoint.config, EnsembleConfig):
        return list(checkpoint.metadata.get("ensemble") or [])
    keys = ("step", "best_val_bleu")
    return [{"file": name, **{k: checkpoint.metadata[k] for k in keys if k in checkpoint.metadata}}]


def check_shapes(config: AnyConfig, model_state: dict[str, Tensor]) -> None:
    """Raise `ValueError` naming the first tensor that `config`'s model lacks, does not expect or
    has in another shape. Reads shapes only, never the weights."""
    device = "cpu" if parameter_count(model_state) <= CPU_CHECK_LIMIT else "meta"
    model = empty_model(config, device=device)
    wanted = {name: tuple(t.shape) for name, t in model.state_dict().items()}
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


CPU_CHECK_LIMIT = 20_000_000
"""`check_shapes` builds models up to this many weights on the CPU (the preset's 4.9 M: 30 ms),
larger ones on the meta device, whose first use imports torch._dynamo (about 1 s: a third of
a `seq2seq translate` of 1,000 sentences)."""


def empty_model(config: AnyConfig, *, device: str = "meta") -> Seq2Seq | Ensemble:
    """The model `config` describes, its weights on `device`: "meta" (the default) allocates
    nothing, "cpu" allocates and initialises them."""
    with torch.device(device):
        return build_model(config)


def parameter_count(model_state: dict[str, Tensor]) -> int:
    """Weights in a state dict; a tensor under several names (tied embeddings) counts once."""
    return sum({tensor.data_ptr(): tensor.numel() for tensor in model_state.values()}.values())


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
        "shortlist": None if checkpoint.shortlist is None else checkpoint.shortlist.to_dict(),
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
    config = config_from_dict(payload["model_config"])
    if (config.src_vocab_size, config.tgt_vocab_size) != (
        tokenizers.src.vocab_size,
        tokenizers.tgt.vocab_size,
    ):
        raise ValueError("model vocabulary sizes differ from the stored tokenizers")
    return Checkpoint(
        config=config,
        model_state=_renamed(payload["model_state"]),
        tokenizers=tokenizers,
        src_lang=payload.get("src_lang"),
        tgt_lang=payload.get("tgt_lang"),
        metadata=dict(payload.get("metadata") or {}),
        training_state=dict(payload.get("training_state") or {}),
        shortlist=_shortlist(payload.get("shortlist"), config),
    )


def _shortlist(data: dict[str, Any] | None, config: AnyConfig) -> Shortlist | None:
    if data is None:
        return None
    shortlist = Shortlist.from_dict(data)
    sizes = (shortlist.best.size(0), shortlist.tgt_vocab_size)
    if sizes != (config.src_vocab_size, config.tgt_vocab_size):
        raise ValueError("the shortlist was made for other vocabularies than the model's")
    return shortlist


def _renamed(model_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weights under today's names (`RENAMED`)."""
    renamed = {}
    for name, tensor in model_state.items():
        for old, new in RENAMED.items():
            if name.startswith(old):
                name = new + name[len(old) :]
        renamed[name] = tensor
    return renamed
