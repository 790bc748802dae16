"""Inside the model: every recurrent layer's gates and states for one sentence.

`inspect_sentence(translator, text)` (or `Translator.inspect`) first runs the real search,
`Translator.search`, to choose the translation, then reads the encoder and the decoder along
that path with the model's own weights (`seq2seq.gates`): per step and unit, for an LSTM the
input, forget and output gates, the candidate, the cell state c and the hidden state h, for a
GRU the reset and update gates, the candidate and h; and at every decoder step the chosen
token with the `top_k` likeliest next tokens. Translation itself is untouched: no hooks, no
flags, so it costs nothing when nobody inspects. An ensemble is inspected member by member
(load one of its files alone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from seq2seq.config import BOS_ID, EOS_ID
from seq2seq.gates import GRU_SIGNALS, LSTM_SIGNALS, Signals, read_layers
from seq2seq.model import Seq2Seq
from seq2seq.search import SearchOptions, max_lengths

if TYPE_CHECKING:
    from seq2seq.translator import Translator

__all__ = [
    "GRU_SIGNALS",
    "LSTM_SIGNALS",
    "MAX_TOKENS",
    "Candidate",
    "DecoderStep",
    "Inspection",
    "LayerTrace",
    "SideTrace",
    "inspect_sentence",
    "read_model",
    "source_ids",
]

MAX_TOKENS = 64
"""Source subwords `inspect_sentence` reads at most, unless told otherwise."""

Pieces = Callable[[Sequence[int]], list[str]]
"""Ids to their subword pieces (`Tokenizer.id_pieces`)."""


@dataclass(frozen=True)
class LayerTrace:
    """One recurrent layer over a sequence: each signal's value at every step, [T, H]."""

    signals: dict[str, Tensor]

    def __getitem__(self, name: str) -> Tensor:
        """The [T, H] values of signal `name` ('cell', 'hidden', 'forget', ...)."""
        if name not in self.signals:
            raise ValueError(f"unknown signal {name!r}; this layer has {', '.join(self.signals)}")
        return self.signals[name]

    def to_dict(self, scale: int, signals: Sequence[str]) -> dict[str, list[list[int]]]:
        """`signals` as integers `round(value * scale)`, indexed [step][unit]."""
        return {name: (self[name] * scale).round().to(torch.int32).tolist() for name in signals}


@dataclass(frozen=True)
class SideTrace:
    """The encoder or the decoder: the token it read at each step and every layer's values."""

    tokens: list[str]
    ids: list[int]
    layers: list[LayerTrace]

    def to_dict(self, scale: int, signals: Sequence[str]) -> dict[str, Any]:
        """Tokens, ids and each layer's `signals` as integers (see `LayerTrace.to_dict`)."""
        layers = [layer.to_dict(scale, signals) for layer in self.layers]
        return {"tokens": self.tokens, "ids": self.ids, "layers": layers}


@dataclass(frozen=True)
class Candidate:
    """A target token and its probability at one decoder step."""

    token: str
    id: int
    probability: float


@dataclass(frozen=True)
class DecoderStep:
    """The token the search chose at one decoder step, and the `top_k` likeliest ones."""

    chosen: Candidate
    top: list[Candidate]


@dataclass(frozen=True)
class Inspection:
    """What the model computed for one sentence, step by step, encoder and decoder.

    `encoder.tokens` are in the order the encoder read them (reversed when the model reverses
    its source); `decoder.tokens[t]` is what the decoder read at step t (BOS, then its own
    output) and `steps[t]` what it chose there (the last is EOS unless the length limit hit).
    """

    text: str
    translation: str
    beam_size: int
    reverse_source: bool
    encoder: SideTrace
    decoder: SideTrace
    steps: list[DecoderStep]

    @property
    def signals(self) -> tuple[str, ...]:
        """The names of the per-step values of every layer."""
        return tuple(self.encoder.layers[0].signals)

    def to_dict(self, decimals: int = 1, *, signals: Sequence[str] | None = None) -> dict[str, Any]:
        """Plain data for JSON: the values of `signals` (default: all) as integers in units of
        `10 ** -decimals` (`value = number / scale`), probabilities rounded to 4 decimals.

        Fixed-point integers keep the answer small: for the 20-subword test sentences of the
        preset model (hidden 256, 39 steps) 1 decimal gives 162 kB of JSON at the median and
        192 kB at most, 2 decimals 202 kB (BENCHMARKS.md, "Inspecting the model"); rounded
        floats would take about twice as much. Fewer `signals` shrink it in proportion.
        """
        if not 0 <= decimals <= 6:
            raise ValueError(f"decimals must be between 0 and 6, got {decimals}")
        chosen = list(self.signals if signals is None else signals)
        if unknown := [name for name in chosen if name not in self.signals]:
            raise ValueError(f"unknown signals {unknown}; this model has {list(self.signals)}")
        scale = 10**decimals
        decoder = self.decoder.to_dict(scale, chosen)
        decoder["steps"] = [_step_dict(step) for step in self.steps]
        return {
            "text": self.text,
            "translation": self.translation,
            "beam_size": self.beam_size,
            "reverse_source": self.reverse_source,
            "signals": chosen,
            "scale": scale,
            "encoder": self.encoder.to_dict(scale, chosen),
            "decoder": decoder,
        }


def _step_dict(step: DecoderStep) -> dict[str, Any]:
    def candidate(item: Candidate) -> dict[str, Any]:
        return {"token": item.token, "id": item.id, "probability": round(item.probability, 4)}

    return {**candidate(step.chosen), "top": [candidate(item) for item in step.top]}


def inspect_sentence(
    translator: Translator,
    text: str,
    *,
    search: SearchOptions,
    top_k: int = 5,
    max_tokens: int = MAX_TOKENS,
) -> Inspection:
    """Translate `text` as one sentence with `search` and read every layer along the way.

    The tokens are those of `translator.translate([text], split_sentences=False, ...)`.
    Raises `ValueError` (one line) for empty text, more than `max_tokens` source subwords,
    `top_k` below 1 or a model whose weights cannot be read (int8).
    """
    source = source_ids(translator, text, max_tokens=max_tokens)
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    model = translator.model
    if not isinstance(model, Seq2Seq):
        raise ValueError("inspect reads one model, not an ensemble: inspect one of its files")
    best = translator.search([source], replace(search, n_best=1))[0][0].tokens
    read, chosen = _decoder_path(best, len(source), search)
    encoder_ids = source[::-1] if model.config.reverse_source else source
    encoder, decoder, probabilities = read_model(model, encoder_ids, read)
    src, tgt = translator.tokenizers.src, translator.tokenizers.tgt
    return Inspection(
        text=text,
        translation=translator.decode([best])[0],
        beam_size=search.beam_size,
        reverse_source=model.config.reverse_source,
        encoder=SideTrace(src.id_pieces(encoder_ids), encoder_ids, encoder),
        decoder=SideTrace(tgt.id_pieces(read), read, decoder),
        steps=_steps(tgt.id_pieces, probabilities, chosen, top_k=top_k),
    )


def read_model(
    model: Seq2Seq, encoder_ids: list[int], decoder_ids: list[int]
) -> tuple[list[LayerTrace], list[LayerTrace], Tensor]:
    """The encoder over `encoder_ids` (in reading order) from zeros, then the decoder over
    `decoder_ids` from the state the encoder hands over: every layer's trace (on the CPU) and
    the decoder's next-token probabilities [T, V]; see `seq2seq.gates.read_layers`."""
    encoder, decoder, logits = read_layers(model, encoder_ids, decoder_ids)  # logits [T, V]
    return _traces(encoder), _traces(decoder), logits.float().softmax(dim=-1).cpu()


def source_ids(translator: Translator, text: str, *, max_tokens: int = MAX_TOKENS) -> list[int]:
    """The source subwords of `text`; `ValueError` when there are none or over `max_tokens`."""
    if not text.strip():
        raise ValueError("the text is empty: nothing to inspect")
    ids = translator.tokenizers.src.encode([text.strip()])[0]
    if len(ids) > max_tokens:
        raise ValueError(
            f"the text has {len(ids)} source subwords; inspect reads at most {max_tokens}"
        )
    return ids


def _decoder_path(
    best: list[int], source_length: int, search: SearchOptions
) -> tuple[list[int], list[int]]:
    """The tokens the decoder read (BOS, its outputs) and those it chose (its outputs, EOS);
    a hypothesis cut at the length limit has no EOS, and its last token was never read."""
    limit = max_lengths(
        torch.tensor([source_length]),
        a=search.max_length_a,
        b=search.max_length_b,
        cap=search.max_length,
    )
    if len(best) < int(limit[0]):
        return [BOS_ID, *best], [*best, EOS_ID]
    return [BOS_ID, *best[:-1]], best


def _traces(layers: list[Signals]) -> list[LayerTrace]:
    return [
        LayerTrace({name: values.float().cpu() for name, values in signals.items()})
        for signals in layers
    ]


def _steps(
    pieces: Pieces, probabilities: Tensor, chosen: list[int], *, top_k: int
) -> list[DecoderStep]:
    """The chosen token and the top-k of each step's distribution, probabilities [T, V]."""
    top_values, top_ids = probabilities.topk(min(top_k, probabilities.size(-1)))  # [T, k]
    chosen_values = probabilities[torch.arange(len(chosen)), chosen].tolist()  # [T]
    steps = []
    for token, value, ids, values in zip(
        chosen, chosen_values, top_ids.tolist(), top_values.tolist(), strict=True
    ):
        top = [Candidate(*item) for item in zip(pieces(ids), ids, values, strict=True)]
        steps.append(DecoderStep(Candidate(pieces([token])[0], token, value), top))
    return steps
