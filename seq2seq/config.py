"""Model hyper-parameters, saved inside every checkpoint so a model can be rebuilt from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

PAD_ID = 0
"""Padding token id, shared by every tokenizer and model of this project."""
UNK_ID = 1
"""Unknown-piece token id."""
BOS_ID = 2
"""Beginning-of-sentence id: the decoder's first input."""
EOS_ID = 3
"""End-of-sentence id: generation stops when it is produced."""


@dataclass(frozen=True, kw_only=True)
class ModelSizes:
    """The network's shape and options, all but the vocabularies: a training config's `model`."""

    embedding_size: int = 256
    """Width of the learned source and target embeddings."""
    hidden_size: int = 512
    """Width of every LSTM layer's hidden and cell state."""
    num_layers: int = 2
    """LSTM layers in the encoder and, separately weighted, in the decoder."""
    dropout: float = 0.2
    """Dropout on embeddings, between LSTM layers and before the output projection."""
    reverse_source: bool = True
    """Feed the source right-to-left, so its first words sit next to the target's first words."""
    tie_embeddings: bool = False
    """Share the decoder input embedding with its output projection (embedding == hidden)."""
    init_range: float = 0.08
    """Every parameter starts uniform in [-init_range, init_range]."""

    def __post_init__(self) -> None:
        for name in ("embedding_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.tie_embeddings and self.embedding_size != self.hidden_size:
            raise ValueError(
                "tie_embeddings needs embedding_size == hidden_size, "
                f"got {self.embedding_size} and {self.hidden_size}"
            )


@dataclass(frozen=True)
class ModelConfig(ModelSizes):
    """Sizes and options of the LSTM encoder-decoder (Sutskever et al., 2014).

    `ModelConfig(src_vocab_size, tgt_vocab_size, **sizes)`: the vocabularies come from the
    tokenizers, every other field (keyword-only) from `ModelSizes`.
    """

    src_vocab_size: int
    """Number of source subwords (the source SentencePiece model's vocabulary)."""
    tgt_vocab_size: int
    """Number of target subwords."""

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        super().__post_init__()

    @classmethod
    def from_sizes(cls, src_vocab_size: int, tgt_vocab_size: int, sizes: ModelSizes) -> ModelConfig:
        """The config of a network of `sizes` over these vocabularies."""
        return cls(src_vocab_size, tgt_vocab_size, **asdict(sizes))

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, as stored in a checkpoint."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from `to_dict` output; unknown keys are an error, not silently dropped."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)
