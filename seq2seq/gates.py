"""Reading recurrent layers step by step: every gate, candidate and state, with the model's weights.

`read_layers` runs a `Seq2Seq`'s encoder over source ids and its decoder over target ids, as the
model does (fused or residual stacks, a bidirectional encoder and its bridge) but one step at a
time, and keeps per step and unit what each layer computed: for an LSTM layer the input,
forget and output gates, the candidate, the cell state c and the hidden state h
(`LSTM_SIGNALS`); for a GRU layer the reset and update gates r and z, the candidate n and h
(`GRU_SIGNALS`). A bidirectional encoder layer has 2H units: the forward direction's, then the
backward direction's, both at the position of the token they read.

The only cell-specific code is `read_lstm_layer` and `read_gru_layer`, chosen by `read_layer`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from seq2seq.model import Encoder, Seq2Seq
from seq2seq.recurrent import ResidualStack, Weights

LSTM_SIGNALS = ("input", "forget", "output", "candidate", "cell", "hidden")
"""What an LSTM layer shows per step and unit: three gates, the candidate tanh(g), c and h."""
GRU_SIGNALS = ("reset", "update", "candidate", "hidden")
"""What a GRU layer shows per step and unit: gates r and z, the candidate n, and h."""

LayerState = tuple[Tensor, ...]
"""One layer's recurrent state for one sentence: (h, c) for an LSTM, (h,) for a GRU, [H] each."""
Signals = dict[str, Tensor]
"""A layer's values per signal name, [T, units] each."""


def read_lstm_layer(
    weights: Weights, inputs: Tensor, state: LayerState | None
) -> tuple[Signals, LayerState]:
    """An LSTM layer with `weights` (w_ih, w_hh, b_ih, b_hh) over inputs [T, I] from state
    (h, c) ([H] each; None: zeros).

    PyTorch's LSTM: gates = (W_ih x + b_ih) + (W_hh h + b_hh), split into i, f, g, o;
    c' = sigmoid(f) * c + sigmoid(i) * tanh(g) and h' = sigmoid(o) * tanh(c').
    """
    w_ih, w_hh, b_ih, b_hh = weights
    zeros = inputs.new_zeros(w_hh.size(1))  # [H]
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


def read_gru_layer(
    weights: Weights, inputs: Tensor, state: LayerState | None
) -> tuple[Signals, LayerState]:
    """A GRU layer with `weights` (w_ih, w_hh, b_ih, b_hh) over inputs [T, I] from state (h,)
    ([H]; None: zeros).

    PyTorch's GRU: r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) and h' = (1 - z) * n + z * h.
    """
    w_ih, w_hh, b_ih, b_hh = weights
    h = state[0] if state is not None else inputs.new_zeros(w_hh.size(1))  # [H]
    projected = torch.addmm(b_ih, inputs, w_ih.t())  # [T, 3H]
    rows = []
    for step_input in projected:  # [3H]
        x_r, x_z, x_n = step_input.chunk(3)  # [H] each
        h_r, h_z, h_n = torch.addmv(b_hh, w_hh, h).chunk(3)  # [H] each
        r, z = (x_r + h_r).sigmoid(), (x_z + h_z).sigmoid()
        n = (x_n + r * h_n).tanh()
        h = (1 - z) * n + z * h  # [H]
        rows.append(torch.stack([r, z, n, h]))  # [4, H], in GRU_SIGNALS order
    values = torch.stack(rows)  # [T, 4, H]
    return dict(zip(GRU_SIGNALS, values.unbind(1), strict=True)), (h,)


def read_layer(
    cell: str, weights: Weights, inputs: Tensor, state: LayerState | None
) -> tuple[Signals, LayerState]:
    """Per-step signals of one layer and direction of `cell`; the one cell-specific switch."""
    reader = read_gru_layer if cell == "gru" else read_lstm_layer
    return reader(weights, inputs, state)


def layer_weights(stack: nn.Module, layer: int, direction: int = 0) -> Weights:
    """The weights of one layer and direction of a fused or residual stack; `ValueError` for
    quantized ones, whose weights cannot be read."""
    if isinstance(stack, ResidualStack):
        module, index = stack.layers[layer], direction
    else:
        module, index = stack, layer * (2 if getattr(stack, "bidirectional", False) else 1)
        index += direction
    if not isinstance(module, nn.LSTM | nn.GRU):
        raise ValueError(
            f"cannot read the gates of a {type(module).__name__} (a model loaded with precision "
            "int8 has quantized weights): inspect a model loaded in fp32"
        )
    return module.all_weights[index]


def read_stack(
    stack: nn.Module,
    inputs: Tensor,
    states: Sequence[LayerState | None],
    *,
    cell: str,
    residual: bool,
    directions: int = 1,
) -> tuple[list[Signals], list[list[LayerState]], Tensor]:
    """Every layer of `stack` over inputs [T, I], each from its own initial state (a backward
    direction from zeros): each layer's signals, its final state per direction, and the
    stack's output [T, D*H]. Each layer reads the hidden states of the one below, plus that
    one's input with `residual` (eval mode: no dropout between layers)."""
    traces, finals = [], []
    for layer, state in enumerate(states):
        signals, final = read_layer(cell, layer_weights(stack, layer), inputs, state)
        ends = [final]
        if directions == 2:
            weights = layer_weights(stack, layer, direction=1)
            backward, end = read_layer(cell, weights, inputs.flip(0), None)
            signals = {k: torch.cat([v, backward[k].flip(0)], dim=1) for k, v in signals.items()}
            ends.append(end)
        traces.append(signals)  # [T, D*H] each
        finals.append(ends)
        hidden = signals["hidden"]  # [T, D*H]
        inputs = hidden + inputs if residual and layer > 0 else hidden
    return traces, finals, inputs


@torch.inference_mode()
def read_layers(
    model: Seq2Seq, encoder_ids: list[int], decoder_ids: list[int]
) -> tuple[list[Signals], list[Signals], Tensor]:
    """The encoder over `encoder_ids` (in reading order) from zeros, then the decoder over
    `decoder_ids` from the state the encoder hands over: every layer's signals and the
    decoder's next-token logits [T, V]."""
    config = model.config
    cell, residual = config.cell, config.residual
    directions = 2 if config.bidirectional_encoder else 1
    embedded = _embed(model.encoder.embedding, encoder_ids)  # [S, E]
    starts = [None] * config.num_layers
    encoder, finals, _ = read_stack(
        model.encoder.rnn, embedded, starts, cell=cell, residual=residual, directions=directions
    )
    embedded = _embed(model.decoder.embedding, decoder_ids)  # [T, E]
    states = handed_over(model.encoder, finals)
    decoder, _, top = read_stack(model.decoder.rnn, embedded, states, cell=cell, residual=residual)
    return encoder, decoder, model.decoder.project(top)  # [T, V]


def handed_over(encoder: Encoder, finals: list[list[LayerState]]) -> list[LayerState]:
    """The decoder's initial state per layer: the encoder's final states, joined by its bridge
    when it reads both ways."""
    if encoder.bridge is None:
        return [ends[0] for ends in finals]
    parts = len(finals[0][0])
    stacked = tuple(
        torch.stack([end[part] for ends in finals for end in ends]).unsqueeze(1)  # [L*2, 1, H]
        for part in range(parts)
    )
    joined = encoder.bridge(stacked)  # [L, 1, H] each
    return [tuple(part[layer, 0] for part in joined) for layer in range(len(finals))]


def _embed(embedding: nn.Embedding, ids: list[int]) -> Tensor:
    return embedding(torch.tensor(ids, device=embedding.weight.device))  # type: ignore[no-any-return]
