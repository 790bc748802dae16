"""Recurrent stacks, LSTM or GRU, shared by the encoder and the decoder.

Without residual connections a stack is PyTorch's own multi-layer `nn.LSTM` or `nn.GRU`: one
fused call per sequence, the default and fastest path. With them it is a `ResidualStack` of
single-layer modules that adds each layer's input to its output from the second layer on.
Both take and return the same things, so the encoder and the decoder never tell them apart.

A `State` is a tuple of tensors with the batch in dim 1: (h, c) for an LSTM, (h,) for a GRU,
each [layers * directions, B, H]. PyTorch's modules take an LSTM's state as a pair and a GRU's
as one tensor (`Hidden`); `as_state` and `as_hidden` convert. `step_layers` advances a decoder
stack by one token with `torch.lstm_cell` / `torch.gru_cell` on the modules' own weights, or,
given the bottom LSTM layer's input gates (`input_gates`), with its hidden product alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from seq2seq.config import ModelConfig
from seq2seq.dropout import dropout as functional_dropout

State = tuple[Tensor, ...]
"""Recurrent state, batch in dim 1: (h, c) for an LSTM, (h,) for a GRU; [L, B, H] each."""
Hidden = Tensor | tuple[Tensor, Tensor]
"""A state as `nn.LSTM` (a pair) or `nn.GRU` (one tensor) takes and returns it."""
Steps = Tensor | PackedSequence
"""A batch of sequences: [B, T, features] (batch first), or packed."""
Weights = Sequence[Tensor]
"""One layer and direction's w_ih, w_hh, b_ih, b_hh."""


def as_state(hidden: Hidden) -> State:
    """A module's final state as a `State`."""
    return hidden if isinstance(hidden, tuple) else (hidden,)


def as_hidden(state: State) -> Hidden:
    """A `State` as the module of its cell takes it."""
    return (state[0], state[1]) if len(state) == 2 else state[0]


def recurrent_layers(
    cell: str,
    input_size: int,
    hidden_size: int,
    layers: int,
    *,
    dropout: float,
    bidirectional: bool,
) -> nn.LSTM | nn.GRU:
    """PyTorch's fused multi-layer LSTM or GRU, batch first; `dropout` between its layers."""
    kind = nn.LSTM if cell == "lstm" else nn.GRU
    return kind(
        input_size,
        hidden_size,
        layers,
        dropout=dropout if layers > 1 else 0.0,
        batch_first=True,
        bidirectional=bidirectional,
    )


def build_stack(config: ModelConfig, *, bidirectional: bool) -> nn.Module:
    """The layers `config` describes, reading embeddings: residual with `config.residual` and
    two layers or more, else fused (one layer is the same either way)."""
    sizes = (config.cell, config.embedding_size, config.hidden_size, config.num_layers)
    if config.residual and config.num_layers > 1:
        return ResidualStack(*sizes, dropout=config.dropout, bidirectional=bidirectional)
    return recurrent_layers(*sizes, dropout=config.dropout, bidirectional=bidirectional)


class ResidualStack(nn.Module):
    """Single-layer LSTMs or GRUs run one after another; from the second layer on, each adds
    its input to its output, so gradients reach the lower layers along the sums.

    Called like `nn.LSTM` / `nn.GRU` (batch first, packed or not): dropout between layers on
    the layer's input only, the residual sum uses the input as it was.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        layers: int,
        *,
        dropout: float,
        bidirectional: bool,
    ) -> None:
        super().__init__()
        self.directions = 2 if bidirectional else 1
        width = hidden_size * self.directions
        self.layers = nn.ModuleList(
            recurrent_layers(
                cell,
                input_size if index == 0 else width,
                hidden_size,
                1,
                dropout=0.0,
                bidirectional=bidirectional,
            )
            for index in range(layers)
        )
        self.dropout = dropout

    def forward(self, inputs: Steps, hidden: Hidden | None = None) -> tuple[Steps, Hidden]:
        """inputs [B, T, I] (or packed), initial state [L*D, B, H] each (None: zeros) ->
        outputs [B, T, D*H] (or packed) and every layer's final state, [L*D, B, H] each."""
        state = None if hidden is None else as_state(hidden)
        finals: list[State] = []
        for index, layer in enumerate(self.layers):
            rows = slice(index * self.directions, (index + 1) * self.directions)
            initial = None if state is None else as_hidden(tuple(part[rows] for part in state))
            if index == 0:
                inputs, final = layer(inputs, initial)
            else:
                outputs, final = layer(_on_data(inputs, self._drop), initial)
                inputs = _sum(outputs, inputs)  # the residual connection
            finals.append(as_state(final))
        return inputs, as_hidden(tuple(torch.cat(parts) for parts in zip(*finals, strict=True)))

    def _drop(self, data: Tensor) -> Tensor:
        return functional_dropout(data, self.dropout, self.training)


def _sum(outputs: Steps, inputs: Steps) -> Steps:
    """outputs + inputs, both packed alike or both [B, T, D*H]."""
    added = inputs.data if isinstance(inputs, PackedSequence) else inputs
    return _on_data(outputs, partial(torch.add, added))


def _on_data(steps: Steps, function: Callable[[Tensor], Tensor]) -> Steps:
    """`function` applied to the values of `steps`, packed or not (same shape, same order)."""
    if isinstance(steps, PackedSequence):
        data = function(steps.data)  # [N, features]
        return PackedSequence(data, steps.batch_sizes, steps.sorted_indices, steps.unsorted_indices)
    return function(steps)


def step_weights(stack: nn.Module) -> Sequence[Weights] | None:
    """Every layer's weights of a one-directional stack of plain `nn.LSTM` / `nn.GRU` modules,
    bottom first; None for others (quantized modules), which must run as sequences."""
    if isinstance(stack, nn.LSTM | nn.GRU):
        return stack.all_weights
    if isinstance(stack, ResidualStack):
        plain = [layer for layer in stack.layers if isinstance(layer, nn.LSTM | nn.GRU)]
        if len(plain) == len(stack.layers):
            return [layer.all_weights[0] for layer in plain]
    return None


def step_layers(
    cell: str,
    weights: Sequence[Weights],
    inputs: Tensor,
    state: State,
    *,
    residual: bool,
    dropout: float,
    gates: bool = False,
) -> tuple[Tensor, State]:
    """One step through every layer: inputs [B, I], state [L, B, H] each -> the top layer's
    output [B, H] and the new state. `dropout` between layers (pass 0 outside training).
    `gates`: an LSTM's `inputs` are the bottom layer's input gates instead ([B, 4H], rows of
    `input_gates`), which skips that layer's input product.

    The same arithmetic as running the stack on a length-1 sequence, without the sequence
    machinery, which at small batches costs more than the step itself.
    """
    if cell == "gru":
        return _gru_step(weights, inputs, state, residual=residual, dropout=dropout)
    return _lstm_step(weights, inputs, state, residual=residual, dropout=dropout, gates=gates)


def input_gates(embedding: Tensor, weights: Weights) -> Tensor:
    """An LSTM layer's input gates for every row of `embedding` [V, E]: x W_ih^T + b_ih + b_hh,
    [V, 4H], so that a step on known tokens looks its gates up instead of multiplying."""
    w_ih, _, b_ih, b_hh = weights
    return torch.addmm(b_ih + b_hh, embedding, w_ih.t())  # [V, 4H]


def _lstm_step(
    weights: Sequence[Weights],
    inputs: Tensor,
    state: State,
    *,
    residual: bool,
    dropout: float,
    gates: bool,
) -> tuple[Tensor, State]:
    hs, cs = [], []
    for layer, layer_weights in enumerate(weights):
        hc = (state[0][layer], state[1][layer])  # [B, H] each
        if layer == 0 and gates:  # inputs [B, 4H]
            h, c = _lstm_from_gates(inputs, hc, layer_weights[1])
        else:
            below = _between_layers(inputs, layer, dropout)  # [B, I]
            h, c = torch.lstm_cell(below, hc, *layer_weights)
        hs.append(h)  # [B, H]
        cs.append(c)
        inputs = h + inputs if residual and layer > 0 else h
    return inputs, (torch.stack(hs), torch.stack(cs))  # [L, B, H] each


def _lstm_from_gates(gates_in: Tensor, hc: tuple[Tensor, Tensor], w_hh: Tensor) -> Hidden:
    """`torch.lstm_cell` with the input part of the gates given: gates_in [B, 4H]."""
    gates = torch.addmm(gates_in, hc[0], w_hh.t())  # [B, 4H]: i, f, g, o
    i, f, g, o = gates.chunk(4, dim=1)  # [B, H] each
    c = torch.sigmoid(f) * hc[1] + torch.sigmoid(i) * torch.tanh(g)  # [B, H]
    return torch.sigmoid(o) * torch.tanh(c), c


def _gru_step(
    weights: Sequence[Weights], inputs: Tensor, state: State, *, residual: bool, dropout: float
) -> tuple[Tensor, State]:
    hs = []
    for layer, layer_weights in enumerate(weights):
        below = _between_layers(inputs, layer, dropout)  # [B, I]
        h = torch.gru_cell(below, state[0][layer], *layer_weights)  # [B, H]
        hs.append(h)
        inputs = h + inputs if residual and layer > 0 else h
    return inputs, (torch.stack(hs),)  # [L, B, H]


def _between_layers(inputs: Tensor, layer: int, dropout: float) -> Tensor:
    return functional_dropout(inputs, dropout) if layer > 0 and dropout > 0 else inputs
