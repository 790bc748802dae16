"""Model hyper-parameters, saved inside every checkpoint so a model can be rebuilt from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

PAD_ID = 0
"""Padding token id, shared by every tokenizer and model of this project."""
UNK_ID = 1
"""Unknown-piece token id."""
BOS_ID = 2
"""Beginning-of-sentence id: the decoder's first input."""
EOS_ID = 3
"""End-of-sentence id: generation stops when it is produced."""

Cell = Literal["lstm", "gru"]
"""The recurrent cell of every layer: an LSTM (state h and c) or a GRU (state h only)."""
CELLS: tuple[str, ...] = get_args(Cell)


@dataclass(frozen=True, kw_only=True)
class ModelSizes:
    """The network's shape and options, all but the vocabularies: a training config's `model`."""

    embedding_size: int = 256
    """Width of the learned source and target embeddings."""
    hidden_size: int = 512
    """Width of every recurrent layer's hidden state (and an LSTM's cell state)."""
    num_layers: int = 2
    """Recurrent layers in the encoder and, separately weighted, in the decoder."""
    dropout: float = 0.2
    """Dropout on embeddings, between recurrent layers and before the output projection."""
    reverse_source: bool = True
    """Feed the source right-to-left, so its first words sit next to the target's first words."""
    tie_embeddings: bool = False
    """Share the decoder input embedding with its output projection (embedding == hidden)."""
    init_range: float = 0.08
    """Every parameter starts uniform in [-init_range, init_range]."""
    cell: Cell = "lstm"
    """'lstm' or 'gru'. A GRU has no cell state: the encoder's final h is the decoder's first h."""
    bidirectional_encoder: bool = False
    """Each encoder layer also reads the source the other way; a learned bridge per layer joins
    its final forward and backward states (h, and c for an LSTM) into the decoder's first state."""
    residual: bool = False
    """From the second layer on, each layer's input is added to its output (encoder and decoder),
    so that stacks of 2 to 4 layers stay trainable."""

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
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
    """Sizes and options of the recurrent encoder-decoder (Sutskever et al., 2014).

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
        """Rebuild from `to_dict` output; unknown keys are an error, not silently dropped.
        Options added later take their defaults, so an older checkpoint's config still loads."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)
