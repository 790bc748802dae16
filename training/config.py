"""`TrainConfig`: typed training settings read from a YAML file plus `--key=value` overrides.

Every field has a docstring; an unknown key, or a value of the wrong type, is a one-line
`ValueError` naming the key, so a typo never silently trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seq2seq import ModelSizes

REPO = Path(__file__).resolve().parent.parent
"""The repository root: relative default paths are resolved against it."""


def default_data_dir() -> Path:
    """`$SEQ2SEQ_DATA` when set, else `../shared/data/multi30k` next to the repository."""
    return Path(os.environ.get("SEQ2SEQ_DATA") or REPO.parent / "shared" / "data" / "multi30k")


@dataclass
class DataConfig:
    """Where the parallel corpus comes from and which sentence pairs are kept."""

    format: str = "parallel"
    """'parallel' ({split}.{lang}[.gz] files), 'tsv', 'jsonl' or 'hub' (Hugging Face hub)."""
    path: str | None = None
    """Data directory, or the hub dataset name; null: $SEQ2SEQ_DATA or ../shared/data/multi30k."""
    hub_fallback: str | None = None
    """Hub dataset in this layout, read when path and $SEQ2SEQ_DATA are unset and the default
    directory is absent ('parallel' only; training.mirrors knows its split names)."""
    hub_config: str | None = None
    """Hub dataset configuration name (e.g. 'de-en' for wmt14); 'hub' only."""
    src_lang: str = "de"
    """Source language code: the file suffix, and the default source field."""
    tgt_lang: str = "en"
    """Target language code."""
    src_field: str | None = None
    """TSV column index, JSONL/hub field (dots for nesting: 'translation.de'); null: src_lang."""
    tgt_field: str | None = None
    """Target column/field, like src_field; null: tgt_lang."""
    train_split: str = "train"
    """Split used for training and for the SentencePiece models."""
    valid_split: str = "val"
    """Split used for validation loss and BLEU."""
    max_length: int = 80
    """Pairs with more subwords than this on either side are dropped from training."""
    max_length_ratio: float = 3.0
    """Pairs whose subword lengths differ by more than this factor are dropped from training."""
    dedupe: bool = False
    """Drop exact duplicate (source, target) pairs from training."""
    streaming: bool = False
    """Read training data as a stream (datasets.IterableDataset) instead of into memory."""
    cache_dir: str | None = None
    """Arrow cache of encoded ids; null: <run_dir>/cache."""


@dataclass
class TokenizerConfig:
    """SentencePiece models, trained on the training split once and kept in the run directory."""

    vocab_size: int = 8000
    """Subword vocabulary size (an upper bound for small corpora)."""
    joint: bool = False
    """One SentencePiece model shared by source and target."""
    model_type: str = "unigram"
    """'unigram' or 'bpe'."""


@dataclass
class OptimConfig:
    """Optimizer, learning-rate schedule, clipping and the loss."""

    optimizer: str = "adam"
    """'adam' or 'adamw'."""
    lr: float = 0.001
    """Peak learning rate, reached at the end of warmup."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """Adam beta1 and beta2."""
    weight_decay: float = 0.0
    """Weight decay (decoupled for adamw)."""
    schedule: str = "inverse_sqrt"
    """'constant', 'inverse_sqrt', 'linear', 'cosine' or 'plateau'. 'linear' and 'cosine' reach
    min_lr at max_steps (else after max_epochs) or when max_minutes run out, whichever is first."""
    warmup_steps: int = 200
    """Linear warmup from 0 to lr over this many steps."""
    min_lr: float = 0.0
    """Floor of every decaying schedule."""
    plateau_factor: float = 0.5
    """'plateau': multiply the learning rate by this when validation BLEU stops improving."""
    plateau_patience: int = 1
    """'plateau': evaluations without improvement before the learning rate is cut."""
    clip_norm: float = 1.0
    """Gradient-norm clipping threshold (0 disables)."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy loss."""


@dataclass
class LoopConfig:
    """Batches, limits, evaluation and checkpoint cadence, precision and device."""

    batch_tokens: int = 4000
    """Padded tokens per batch (per process), source or target side whichever is longer."""
    max_sentences: int = 256
    """Sentences per batch at most."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: no limit)."""
    max_epochs: int = 0
    """Stop after this many passes over the training data (0: no limit)."""
    max_minutes: float = 0.0
    """Stop after this many wall-clock minutes of training (0: no limit)."""
    eval_every: int = 500
    """Validate (loss and BLEU) every this many steps, and once at the end."""
    eval_sentences: int = 0
    """Validation sentences decoded for BLEU (0: all); the loss uses the whole split."""
    eval_beam_size: int = 1
    """Beam size of the validation BLEU (1: greedy)."""
    early_stopping: int = 0
    """Stop after this many evaluations without a better BLEU (0: never)."""
    save_every: int = 0
    """Also write last.pt every this many steps (0: only at evaluations and at the end)."""
    keep_checkpoints: int = 0
    """Keep the last this many validated models as step-<step>.pt, for `seq2seq average`."""
    log_every: int = 50
    """Write a metrics.jsonl line every this many steps."""
    precision: str = "fp32"
    """'fp32', 'bf16' (autocast on CUDA or CPU) or 'fp16' (CUDA, with a gradient scaler)."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda'."""
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""
    progress: bool = True
    """Show a tqdm progress bar on an interactive terminal."""


@dataclass
class TrainConfig:
    """Everything one training run needs; see training/configs/*.yaml for commented presets."""

    run_dir: str = "runs/default"
    """Checkpoints, tokenizers, metrics and curves go here."""
    seed: int = 1
    """Seed of initialisation, dropout and batch order."""
    data: DataConfig = field(default_factory=DataConfig)
    """The corpus."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """The subword models."""
    model: ModelSizes = field(default_factory=ModelSizes)
    """The network (`seq2seq.ModelSizes`; the vocabularies come from the tokenizers)."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """The optimisation."""
    train: LoopConfig = field(default_factory=LoopConfig)
    """The loop."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, stored in checkpoints."""
        return dataclasses.asdict(self)


def load_config(path: str | os.PathLike[str], overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML file, apply `--key=value` overrides, and check every key and type."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the top level must be a mapping of keys to values")
    for item in overrides or []:
        key, value = parse_override(item)
        _set_nested(raw, key.split("."), value)
    config: TrainConfig = from_dict(TrainConfig, raw, "")
    validate(config)
    return config


CHOICES = {
    "data.format": ("parallel", "tsv", "jsonl", "hub"),
    "tokenizer.model_type": ("unigram", "bpe"),
    "optim.optimizer": ("adam", "adamw"),
    "optim.schedule": ("constant", "inverse_sqrt", "linear", "cosine", "plateau"),
    "train.precision": ("fp32", "bf16", "fp16"),
}
POSITIVE = (
    "tokenizer.vocab_size",
    "data.max_length",
    "train.batch_tokens",
    "train.max_sentences",
    "train.eval_every",
    "train.log_every",
)
"""Model sizes are checked by `seq2seq.ModelSizes` itself."""


def validate(config: TrainConfig) -> None:
    """Values every run needs: known choices, positive sizes, a limit that ends training."""
    for key, allowed in CHOICES.items():
        value = _get(config, key)
        if value not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    for key in POSITIVE:
        if _get(config, key) <= 0:
            raise ValueError(f"{key} must be positive, got {_get(config, key)}")
    loop = config.train
    if loop.max_steps <= 0 and loop.max_epochs <= 0 and loop.max_minutes <= 0:
        raise ValueError("set at least one of train.max_steps, max_epochs, max_minutes")
    if not 0.0 <= config.optim.label_smoothing < 1.0:
        raise ValueError(
            f"optim.label_smoothing must be in [0, 1), got {config.optim.label_smoothing}"
        )


def _get(config: TrainConfig, dotted: str) -> Any:
    section, name = dotted.split(".")
    return getattr(getattr(config, section), name)


def parse_override(item: str) -> tuple[str, Any]:
    """'--model.hidden_size=256' -> ('model.hidden_size', 256); values are parsed as YAML."""
    body = item[2:] if item.startswith("--") else item
    key, equals, text = body.partition("=")
    if not equals or not key:
        raise ValueError(f"override {item!r} must look like --key=value (e.g. --optim.lr=0.002)")
    try:
        return key.replace("-", "_"), yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return key.replace("-", "_"), text


def _set_nested(raw: dict[str, Any], keys: list[str], value: Any) -> None:
    for index, key in enumerate(keys[:-1]):
        child = raw.setdefault(key, {})
        if not isinstance(child, dict):
            raise ValueError(f"{'.'.join(keys[: index + 1])} is not a section")
        raw = child
    raw[keys[-1]] = value


def from_dict(cls: type[Any], raw: dict[str, Any], prefix: str) -> Any:
    """Build dataclass `cls` from `raw`, naming the full key of any unknown or mistyped value."""
    if not isinstance(raw, dict):
        raise ValueError(f"{prefix.rstrip('.') or 'config'} must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        where = f"{prefix.rstrip('.')} " if prefix else ""
        raise ValueError(
            f"unknown config key {prefix}{unknown[0]} "
            f"(valid {where}keys: {', '.join(sorted(known))})"
        )
    values = {}
    for name, value in raw.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = from_dict(hint, value, f"{prefix}{name}.")  # type: ignore[arg-type]
        else:
            values[name] = coerce(value, hint, f"{prefix}{name}")
    try:
        return cls(**values)
    except ValueError as error:  # a section's own check, e.g. ModelSizes: name the section
        raise ValueError(f"{prefix}{error}") from error


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Check `value` against a simple type hint (int, float, bool, str, list, optional)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ValueError(f"{key} must not be null")
    for option in (o for o in options if o is not type(None)):
        converted = _convert(value, option)
        if converted is not None:
            return converted
    names = " or ".join(getattr(o, "__name__", str(o)) for o in options)
    raise ValueError(f"{key} must be {names}, got {value!r}")


def _convert(value: Any, option: Any) -> Any:
    if option is bool:
        return value if isinstance(value, bool) else None
    if option is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if option is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(value) if isinstance(value, str) else None
        except ValueError:
            return None
    if option is str:
        return value if isinstance(value, str) else None
    if typing.get_origin(option) is list and isinstance(value, list):
        item = typing.get_args(option)[0]
        items = [_convert(element, item) for element in value]
        return None if any(element is None for element in items) else items
    return None
