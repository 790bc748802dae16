"""The Sutskever-style encoder-decoder: the encoder's final state is all the decoder sees.

Every layer is an LSTM (state h and c) or a GRU (state h), `model.cell`; the layers are fused or
residual (`seq2seq.recurrent`). A bidirectional encoder hands over its final states through a
learned `Bridge`; only final states ever cross, never the encoder's per-step outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from seq2seq.config import PAD_ID, ModelConfig
from seq2seq.dropout import Dropout
from seq2seq.onednn import linear
from seq2seq.recurrent import (
    State,
    Weights,
    as_hidden,
    as_state,
    build_stack,
    input_gates,
    step_layers,
    step_weights,
)

__all__ = ["Bridge", "Decoder", "Encoder", "Projection", "Seq2Seq", "State", "reverse_padded"]

Projection = Callable[[Tensor], Tensor]
"""An output layer: top-layer states [B, H] -> scores [B, V]; the decoder's own by default."""


def reverse_padded(tokens: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each row's first `lengths[i]` tokens and leave its padding where it is."""
    steps = torch.arange(tokens.size(1), device=tokens.device)  # [S]
    lengths = lengths.to(tokens.device).unsqueeze(1)  # [B, 1]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # [B, S]
    return tokens.gather(1, index)  # [B, S]


class Encoder(nn.Module):
    """Reads the source (many-to-one) and returns only the final state of every layer."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.reverse_source = config.reverse_source
        self.embedding = nn.Embedding(config.src_vocab_size, config.embedding_size, PAD_ID)
        self.dropout = Dropout(config.dropout)
        self.rnn = build_stack(config, bidirectional=config.bidirectional_encoder)
        self.bridge = Bridge(config) if config.bidirectional_encoder else None

    def forward(self, src: Tensor, src_len: Tensor) -> State:
        """src [B, S] ids, src_len [B] -> the decoder's initial state, [layers, B, H] each."""
        if self.reverse_source:
            src = reverse_padded(src, src_len)  # [B, S]
        embedded = self.dropout(self.embedding(src))  # [B, S, E]
        lengths = src_len.cpu()  # [B]
        if bool((lengths == src.size(1)).all()):  # no padding: batch size 1, sorted batches
            _, final = self.rnn(embedded)  # one fused call (oneDNN/cuDNN), no packing
        else:
            packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
            _, final = self.rnn(packed)  # [L*D, B, H] each, in the input's row order
        state = as_state(final)
        return state if self.bridge is None else self.bridge(state)  # [L, B, H] each


class Bridge(nn.Module):
    """Joins each layer's final forward and backward states into the decoder's initial state.

    Per layer, a learned linear map of [forward; backward] (2H -> H) for h, through tanh since
    a decoder's h lies in (-1, 1), and another, without it, for an LSTM's cell state c.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.h = _layer_maps(config)
        self.c = _layer_maps(config) if config.cell == "lstm" else None

    def forward(self, state: State) -> State:
        """Final states [L*2, B, H] each (per layer forward, then backward) -> [L, B, H] each."""
        h = _join(self.h, state[0]).tanh()  # [L, B, H]
        return (h,) if self.c is None else (h, _join(self.c, state[1]))


def _layer_maps(config: ModelConfig) -> nn.ModuleList:
    size = config.hidden_size
    return nn.ModuleList(nn.Linear(2 * size, size) for _ in range(config.num_layers))


def _join(maps: nn.ModuleList, part: Tensor) -> Tensor:
    both = torch.cat([part[0::2], part[1::2]], dim=-1)  # [L, B, 2H]: forward, backward
    return torch.stack([linear(both[layer]) for layer, linear in enumerate(maps)])  # [L, B, H]


class Decoder(nn.Module):
    """Generates the target (one-to-many) from the encoder's final state, with its own weights."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.cell, self.residual = config.cell, config.residual
        self.layer_dropout = config.dropout if config.num_layers > 1 else 0.0
        self.embedding = nn.Embedding(config.tgt_vocab_size, config.embedding_size, PAD_ID)
        self.dropout = Dropout(config.dropout)
        self.rnn = build_stack(config, bidirectional=False)
        self.output = nn.Linear(config.hidden_size, config.tgt_vocab_size)
        if config.tie_embeddings:
            self.output.weight = self.embedding.weight
        self._gates: tuple[tuple[tuple[int, int], ...], Tensor] | None = None

    def forward(self, tgt_in: Tensor, state: State) -> tuple[Tensor, State]:
        """tgt_in [B, T] ids -> logits [B, T, V] and the state after the last step."""
        outputs, state = self.states(tgt_in, state)  # [B, T, H]
        return self.project(outputs), state  # [B, T, V]

    def project(self, states: Tensor) -> Tensor:
        """The output layer: states [..., H] -> logits [..., V]; an fp32 layer on the CPU
        multiplies through oneDNN (`seq2seq.onednn`), an int8 one as quantized."""
        if isinstance(self.output, nn.Linear):
            return linear(states, self.output.weight, self.output.bias)
        return self.output(states)  # type: ignore[no-any-return]

    def states(self, tgt_in: Tensor, state: State) -> tuple[Tensor, State]:
        """tgt_in [B, T] ids -> top-layer outputs [B, T, H] (dropout applied), last state."""
        embedded = self.dropout(self.embedding(tgt_in))  # [B, T, E]
        outputs, final = self.rnn(embedded, as_hidden(state))  # [B, T, H]
        return self.dropout(outputs), as_state(final)

    def step(
        self, tokens: Tensor, state: State, output: Projection | None = None
    ) -> tuple[Tensor, State]:
        """One step, tokens [B] -> logits [B, V] (or [B, v] through another `output`, e.g. a
        shortlist's rows), through `step_layers` on the layers' own weights; a stack whose
        weights are not plain tensors (int8) runs as a sequence. An LSTM decoding without
        gradients looks its bottom layer's input gates up (`input_gates`)."""
        project = self.project if output is None else output
        weights = step_weights(self.rnn)
        if weights is None:  # e.g. dynamically quantized layers
            outputs, state = self.states(tokens.unsqueeze(1), state)  # [B, 1, H]
            return project(outputs.squeeze(1)), state
        table = self._input_gates(weights)  # [V, 4H], or None
        # [B, E] embeddings, or [B, 4H] the bottom layer's input gates
        inputs = self.dropout(self.embedding(tokens)) if table is None else table[tokens]
        dropout = self.layer_dropout if self.training else 0.0
        top, state = step_layers(
            self.cell, weights, inputs, state,
            residual=self.residual, dropout=dropout, gates=table is not None,
        )  # [B, H]  # fmt: skip
        return project(self.dropout(top)), state  # [B, V]

    def _input_gates(self, weights: Sequence[Weights]) -> Tensor | None:
        """The bottom layer's input gates of every target piece, [V, 4H], for an LSTM decoding
        without gradients (None otherwise): its input product at every step becomes a lookup. Made
        again whenever the weights change (their storage or version)."""
        if self.training or self.cell != "lstm" or torch.is_grad_enabled():
            return None
        sources = (self.embedding.weight, *weights[0])
        key = tuple((tensor.data_ptr(), tensor._version) for tensor in sources)
        if self._gates is None or self._gates[0] != key:
            self._gates = (key, input_gates(self.embedding.weight, weights[0]))
        return self._gates[1]


class Seq2Seq(nn.Module):
    """Encoder and decoder with no attention: the source reaches the decoder only through the
    encoder's final state."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform initialisation of every weight, padding embeddings set to zero."""
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -self.config.init_range, self.config.init_range)
        with torch.no_grad():
            self.encoder.embedding.weight[PAD_ID].zero_()
            self.decoder.embedding.weight[PAD_ID].zero_()

    def encode(self, src: Tensor, src_len: Tensor) -> State:
        """src [B, S], src_len [B] -> the decoder's initial state, (h, c) or (h,): [L, B, H]."""
        return self.encoder(src, src_len)  # type: ignore[no-any-return]

    def decode_step(
        self, tokens: Tensor, state: State, output: Projection | None = None
    ) -> tuple[Tensor, State]:
        """One decoder step: tokens [B] -> logits [B, V] (through `output` if given) and the
        next state."""
        return self.decoder.step(tokens, state, output)  # type: ignore[no-any-return]

    def forward(
        self, src: Tensor, src_len: Tensor, tgt_in: Tensor, positions: Tensor | None = None
    ) -> Tensor:
        """Teacher forcing: src [B, S], tgt_in [B, T] (BOS + target) -> logits [B, T, V].

        With `positions` ([B, T] bool, e.g. `tgt_out != PAD_ID`) only those positions are
        projected: logits [N, V] in row-major order, so padding costs neither the output
        projection nor the softmax, the largest matrix multiplies of a training step.
        """
        states, _ = self.decoder.states(tgt_in, self.encode(src, src_len))  # [B, T, H]
        if positions is not None:
            states = states[positions]  # [N, H]
        return self.decoder.project(states)  # type: ignore[no-any-return]

    def num_parameters(self) -> int:
        """Trainable parameters, tied weights counted once."""
        return sum(parameter.numel() for parameter in self.parameters())
