"""Inside the model: every LSTM layer's gates, cell and hidden state for one sentence.

`inspect_sentence(translator, text)` (or `Translator.inspect`) first runs the real search,
`Translator.nbest_ids`, to choose the translation, then reads the encoder and the decoder
along that path with the model's own weights: per step and unit the input, forget and output
gates, the candidate, the cell state c and the hidden state h, and at every decoder step the
chosen token with the `top_k` likeliest next tokens. Translation itself is untouched: no
hooks, no flags, so it costs nothing when nobody inspects.

The only cell-specific code is `read_layer`; another recurrent cell (a GRU, with gates r, z, n
and no cell state) adds a branch there and its own reader beside `read_lstm_layer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from seq2seq.config import BOS_ID, EOS_ID
from seq2seq.model import Seq2Seq
from seq2seq.search import SearchOptions, max_lengths

if TYPE_CHECKING:
    from seq2seq.translator import Translator

LSTM_SIGNALS = ("input", "forget", "output", "candidate", "cell", "hidden")
"""What an LSTM layer shows per step and unit: three gates, the candidate tanh(g), c and h."""
MAX_TOKENS = 64
"""Source subwords `inspect_sentence` reads at most, unless told otherwise."""

LayerState = tuple[Tensor, ...]
"""One layer's recurrent state for one sentence: (h, c), [H] each, for an LSTM."""
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


def read_lstm_layer(
    lstm: nn.LSTM, layer: int, inputs: Tensor, state: LayerState | None
) -> tuple[dict[str, Tensor], LayerState]:
    """Layer `layer` of `lstm` over inputs [T, I] from state (h, c) ([H] each; None: zeros).

    PyTorch's LSTM: gates = (W_ih x + b_ih) + (W_hh h + b_hh), split into i, f, g, o;
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g) and h' = sigmoid(o) * tanh(c').
    """
    w_ih, w_hh, b_ih, b_hh = lstm.all_weights[layer]
    zeros = inputs.new_zeros(lstm.hidden_size)  # [H]
    h, c = state if state is not None else (zeros, zeros)
    projected = torch.addmm(b_ih, inputs, w_ih.t())  # [T, 4H]
    rows = []
    for step_input in projected:  # [4H]
        gates = step_input + torch.addmv(b_hh, w_hh, h)  # [4H]
        i, f, g, o = gates.chunk(4)  # [H] each
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c = f * c + i * g  # [H]
        h = o * c.tanh()  # [H]
        rows.append(torch.stack([i, f, o, g, c, h]))  # [6, H], in LSTM_SIGNALS order
    values = torch.stack(rows)  # [T, 6, H]
    return dict(zip(LSTM_SIGNALS, values.unbind(1), strict=True)), (h, c)


def read_layer(
    rnn: nn.Module, layer: int, inputs: Tensor, state: LayerState | None
) -> tuple[dict[str, Tensor], LayerState]:
    """Per-step signals of one layer of `rnn`, by its cell type; the one cell-specific switch."""
    if isinstance(rnn, nn.LSTM):
        return read_lstm_layer(rnn, layer, inputs, state)
    raise ValueError(
        f"cannot read the gates of a {type(rnn).__name__} (a model loaded with precision "
        "int8 has quantized weights): inspect a model loaded in fp32"
    )


def read_stack(
    rnn: nn.Module, inputs: Tensor, states: Sequence[LayerState | None]
) -> tuple[list[LayerTrace], list[LayerState]]:
    """Every layer of `rnn` over inputs [T, I], each from its own initial state; the layers'
    traces and final states. Each layer reads the hidden states of the one below (eval mode:
    no dropout between layers)."""
    traces, finals = [], []
    for layer, state in enumerate(states):
        signals, final = read_layer(rnn, layer, inputs, state)
        traces.append(LayerTrace(signals))
        finals.append(final)
        inputs = signals["hidden"]  # [T, H]
    return traces, finals


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
    best = translator.search([source], replace(search, n_best=1))[0][0].tokens
    read, chosen = _decoder_path(best, len(source), search)
    model = translator.model
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


@torch.inference_mode()
def read_model(
    model: Seq2Seq, encoder_ids: list[int], decoder_ids: list[int]
) -> tuple[list[LayerTrace], list[LayerTrace], Tensor]:
    """The encoder over `encoder_ids` (in reading order) from zeros, then the decoder over
    `decoder_ids` from the encoder's final states: every layer's trace (on the CPU) and the
    decoder's next-token probabilities [T, V]."""
    layers = model.config.num_layers
    embedded = _embed(model.encoder.embedding, encoder_ids)  # [S, E]
    encoder, states = read_stack(model.encoder.lstm, embedded, [None] * layers)
    embedded = _embed(model.decoder.embedding, decoder_ids)  # [T, E]
    decoder, _ = read_stack(model.decoder.lstm, embedded, states)
    logits = model.decoder.output(decoder[-1]["hidden"])  # [T, V]
    return _to_cpu(encoder), _to_cpu(decoder), logits.float().softmax(dim=-1).cpu()


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


def _embed(embedding: nn.Embedding, ids: list[int]) -> Tensor:
    return embedding(torch.tensor(ids, device=embedding.weight.device))  # type: ignore[no-any-return]


def _to_cpu(traces: list[LayerTrace]) -> list[LayerTrace]:
    return [
        LayerTrace({name: values.float().cpu() for name, values in trace.signals.items()})
        for trace in traces
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
