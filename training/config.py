"""`TrainConfig`: typed training settings read from a YAML file plus `--key=value` overrides.

The sections are pydantic dataclasses, checked strictly (an int is not a bool, a float not an
int) with `Literal` choices and a docstring per field (pydantic's field descriptions); the
`model` section is `seq2seq.ModelSizes`, checked the same way. An unknown key, a value of the
wrong type or out of range is a one-line `ValueError` naming the key, so a typo never silently
trains the wrong model. A new setting is one more field with a default and a docstring.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails

from seq2seq import ModelSizes

REPO = Path(__file__).resolve().parent.parent
"""The repository root: relative default paths are resolved against it."""


STRICT = ConfigDict(strict=True, extra="forbid", use_attribute_docstrings=True)
"""Values must have their field's type (ints pass as floats), unknown keys are errors, and the
docstrings describe the fields."""
Positive = Annotated[int, Field(gt=0)]
DataFormat = Literal["parallel", "tsv", "jsonl", "hub"]
ScheduleName = Literal["constant", "inverse_sqrt", "linear", "cosine", "plateau"]


def default_data_dir() -> Path:
    """`$SEQ2SEQ_DATA` when set, else `../shared/data/multi30k` next to the repository."""
    return Path(os.environ.get("SEQ2SEQ_DATA") or REPO.parent / "shared" / "data" / "multi30k")


@dataclass(config=STRICT)
class DataConfig:
    """Where the parallel corpus comes from and which sentence pairs are kept."""

    format: DataFormat = "parallel"
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
    max_length: Positive = 80
    """Pairs with more subwords than this on either side are dropped from training."""
    max_length_ratio: float = 3.0
    """Pairs whose subword lengths differ by more than this factor are dropped from training."""
    dedupe: bool = False
    """Drop exact duplicate (source, target) pairs from training."""
    streaming: bool = False
    """Read training data as a stream (datasets.IterableDataset) instead of into memory."""
    cache_dir: str | None = None
    """Arrow cache of encoded ids; null: <run_dir>/cache."""


@dataclass(config=STRICT)
class TokenizerConfig:
    """SentencePiece models, trained on the training split once and kept in the run directory."""

    vocab_size: Positive = 8000
    """Subword vocabulary size (an upper bound for small corpora), of each language's model."""
    src_vocab_size: Positive | None = None
    """Source model's size instead; null: vocab_size. Cheap: only an embedding grows."""
    tgt_vocab_size: Positive | None = None
    """Target model's size instead; null: vocab_size. It is the output layer's width."""
    joint: bool = False
    """One SentencePiece model shared by source and target (vocab_size pieces)."""
    model_type: Literal["unigram", "bpe"] = "unigram"
    """'unigram' or 'bpe'."""

    def __post_init__(self) -> None:
        if self.joint and (self.src_vocab_size or self.tgt_vocab_size):
            raise ValueError("joint takes vocab_size only, not src_vocab_size or tgt_vocab_size")

    @property
    def sizes(self) -> tuple[int, int]:
        """(source, target) vocabulary sizes."""
        return self.src_vocab_size or self.vocab_size, self.tgt_vocab_size or self.vocab_size


@dataclass(config=STRICT)
class OptimConfig:
    """Optimizer, learning-rate schedule, clipping and the loss."""

    optimizer: Literal["adam", "adamw"] = "adam"
    """'adam' or 'adamw'."""
    lr: float = 0.001
    """Peak learning rate, reached at the end of warmup."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """Adam beta1 and beta2."""
    weight_decay: float = 0.0
    """Weight decay (decoupled for adamw)."""
    schedule: ScheduleName = "inverse_sqrt"
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

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass(config=STRICT)
class LoopConfig:
    """Batches, limits, evaluation and checkpoint cadence, precision and device."""

    batch_tokens: Positive = 4000
    """Padded tokens per batch (per process), source or target side whichever is longer."""
    max_sentences: Positive = 256
    """Sentences per batch at most."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0: no limit)."""
    max_epochs: int = 0
    """Stop after this many passes over the training data (0: no limit)."""
    max_minutes: float = 0.0
    """Stop after this many wall-clock minutes of training (0: no limit)."""
    eval_every: Positive = 500
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
    shortlist: bool = True
    """Learn a lexical shortlist from the training data (as `seq2seq shortlist` does, a few
    seconds at the start) into every checkpoint, for `--shortlist` decoding; not for
    streamed data."""
    log_every: Positive = 50
    """Write a metrics.jsonl line every this many steps."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """'fp32', 'bf16' (autocast on CUDA or CPU), 'fp16' (CUDA, with a gradient scaler), or
    'auto': bf16 where a probe of the run's step finds it clearly faster, else fp32."""
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda'."""
    threads: int = 0
    """CPU threads for torch (0: torch's default)."""
    progress: bool = True
    """Show a tqdm progress bar on an interactive terminal."""


@dataclass(config=STRICT, frozen=True, kw_only=True)
class ModelSection(ModelSizes):
    """`seq2seq.ModelSizes` (its fields are documented there), checked like the other sections."""


@dataclass(config=STRICT)
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


SECTIONS: dict[str, type[Any]] = {
    "data": DataConfig,
    "tokenizer": TokenizerConfig,
    "model": ModelSection,
    "optim": OptimConfig,
    "train": LoopConfig,
}
"""The class that checks each section of a config file."""


def load_config(path: str | os.PathLike[str], overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML file, apply `--key=value` overrides, and check every key and type."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such config file")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the top level must be a mapping of keys to values")
    for item in overrides or []:
        key, value = parse_override(item)
        _set_nested(raw, key.split("."), value)
    config = from_dict(raw)
    validate(config)
    return config


def from_dict(raw: dict[str, Any]) -> TrainConfig:
    """A `TrainConfig` from plain data, each section checked by its class (`SECTIONS`); a
    one-line `ValueError` naming the first key that is unknown or wrong."""
    values = dict(raw)
    for name, section in SECTIONS.items():
        if name in values:
            if not isinstance(values[name], dict):
                raise ValueError(f"{name} must be a mapping")
            values[name] = _checked(section, values[name], f"{name}.")
    config: TrainConfig = _checked(TrainConfig, values, "")
    return config


def validate(config: TrainConfig) -> None:
    """What no single section can check: a limit that ends training."""
    loop = config.train
    if loop.max_steps <= 0 and loop.max_epochs <= 0 and loop.max_minutes <= 0:
        raise ValueError("set at least one of train.max_steps, max_epochs, max_minutes")


def _checked(cls: type[Any], values: dict[str, Any], prefix: str) -> Any:
    try:
        return cls(**values)
    except ValidationError as error:
        raise ValueError(_one_line(error, cls, prefix)) from None


def _one_line(error: ValidationError, cls: type[Any], prefix: str) -> str:
    """The first problem pydantic found, unknown keys first, as one line naming the key."""
    problems = sorted(
        error.errors(), key=lambda e: (e["type"] != "unexpected_keyword_argument", e["loc"])
    )
    problem = problems[0]
    key = prefix + ".".join(str(part) for part in problem["loc"])
    if problem["type"] == "unexpected_keyword_argument":
        section = f"{prefix.rstrip('.')} " if prefix else ""
        known = ", ".join(sorted(f.name for f in dataclasses.fields(cls)))
        return f"unknown config key {key} (valid {section}keys: {known})"
    if problem["type"] == "value_error":  # a section's own check, e.g. ModelSizes': name it
        return f"{prefix}{problem['ctx']['error']}"
    return _value_problem(key, problem)


def _value_problem(key: str, problem: ErrorDetails) -> str:
    value, kind = problem.get("input"), problem["type"]
    if value is None:
        return f"{key} must not be null"
    if kind in TYPE_NAMES:
        return f"{key} must be {TYPE_NAMES[kind]}, got {value!r}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", problem["ctx"]["expected"])
        return f"{key} must be one of {', '.join(choices)}, got {value!r}"
    if kind == "greater_than" and problem["ctx"]["gt"] == 0:
        return f"{key} must be positive, got {value!r}"
    return f"{key}: {problem['msg']}, got {value!r}"


TYPE_NAMES = {
    "int_type": "int",
    "float_type": "float",
    "bool_type": "bool",
    "string_type": "str",
    "list_type": "list",
}
"""pydantic's type errors and the type each names."""


class Loader(yaml.SafeLoader):
    """YAML with `1e-3` read as a number, as YAML 1.2 does (PyYAML's YAML 1.1 wants `1.0e-3`)."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def parse_override(item: str) -> tuple[str, Any]:
    """'--model.hidden_size=256' -> ('model.hidden_size', 256); values are parsed as YAML."""
    body = item[2:] if item.startswith("--") else item
    key, equals, text = body.partition("=")
    if not equals or not key:
        raise ValueError(f"override {item!r} must look like --key=value (e.g. --optim.lr=0.002)")
    try:
        return key.replace("-", "_"), yaml.load(text, Loader=Loader) if text else ""
    except yaml.YAMLError:
        return key.replace("-", "_"), text


def _set_nested(raw: dict[str, Any], keys: list[str], value: Any) -> None:
    for index, key in enumerate(keys[:-1]):
        child = raw.setdefault(key, {})
        if not isinstance(child, dict):
            raise ValueError(f"{'.'.join(keys[: index + 1])} is not a section")
        raw = child
    raw[keys[-1]] = value


SCHEDULES: tuple[str, ...] = get_args(ScheduleName)
"""Known learning-rate schedule names."""
