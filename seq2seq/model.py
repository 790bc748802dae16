"""The Sutskever-style LSTM encoder-decoder: the encoder's final (h, c) is all the decoder sees."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from seq2seq.config import PAD_ID, ModelConfig

State = tuple[Tensor, Tensor]
"""LSTM state (h, c), each [layers, B, H]."""


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
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.embedding_size,
            config.hidden_size,
            config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )

    def forward(self, src: Tensor, src_len: Tensor) -> State:
        """src [B, S] ids, src_len [B] -> (h, c), each [layers, B, H]."""
        if self.reverse_source:
            src = reverse_padded(src, src_len)  # [B, S]
        embedded = self.dropout(self.embedding(src))  # [B, S, E]
        lengths = src_len.cpu()  # [B]
        if bool((lengths == src.size(1)).all()):  # no padding: batch size 1, sorted batches
            _, (h, c) = self.lstm(embedded)  # one fused call (oneDNN/cuDNN), no packing
            return h, c
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        _, (h, c) = self.lstm(packed)  # [L, B, H] each, in the input's row order
        return h, c


class Decoder(nn.Module):
    """Generates the target (one-to-many) from the encoder's final state, with its own weights."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(config.tgt_vocab_size, config.embedding_size, PAD_ID)
        self.dropout = nn.Dropout(config.dropout)
        self.lstm = nn.LSTM(
            config.embedding_size,
            config.hidden_size,
            config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.output = nn.Linear(config.hidden_size, config.tgt_vocab_size)
        if config.tie_embeddings:
            self.output.weight = self.embedding.weight

    def forward(self, tgt_in: Tensor, state: State) -> tuple[Tensor, State]:
        """tgt_in [B, T] ids -> logits [B, T, V] and the state after the last step."""
        outputs, state = self.states(tgt_in, state)  # [B, T, H]
        return self.output(outputs), state  # [B, T, V]

    def states(self, tgt_in: Tensor, state: State) -> tuple[Tensor, State]:
        """tgt_in [B, T] ids -> top-layer outputs [B, T, H] (dropout applied), last state."""
        embedded = self.dropout(self.embedding(tgt_in))  # [B, T, E]
        outputs, state = self.lstm(embedded, state)  # [B, T, H]
        return self.dropout(outputs), state

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """One step, tokens [B] -> logits [B, V], through `lstm_cell` on the LSTM's own weights.

        The same arithmetic as running `self.lstm` on a length-1 sequence, without the
        sequence machinery, which at small batches costs more than the step itself.
        """
        if not isinstance(self.lstm, nn.LSTM):  # e.g. a dynamically quantized LSTM
            logits, state = self(tokens.unsqueeze(1), state)  # [B, 1, V]
            return logits.squeeze(1), state
        inputs = self.dropout(self.embedding(tokens))  # [B, E]
        hs, cs = [], []
        for layer, weights in enumerate(self.lstm.all_weights):  # w_ih, w_hh, b_ih, b_hh
            if layer > 0 and self.training:
                inputs = nn.functional.dropout(inputs, self.lstm.dropout)
            h, c = torch.lstm_cell(inputs, (state[0][layer], state[1][layer]), *weights)
            hs.append(h)  # [B, H]
            cs.append(c)
            inputs = h
        logits = self.output(self.dropout(inputs))  # [B, V]
        return logits, (torch.stack(hs), torch.stack(cs))  # [L, B, H] each


class Seq2Seq(nn.Module):
    """Encoder and decoder with no attention: the source reaches the decoder only through (h, c)."""

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
        """src [B, S], src_len [B] -> the encoder's final (h, c), each [layers, B, H]."""
        return self.encoder(src, src_len)  # type: ignore[no-any-return]

    def decode_step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """One decoder step: tokens [B] -> logits [B, V] and the next state."""
        return self.decoder.step(tokens, state)  # type: ignore[no-any-return]

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
        return self.decoder.output(states)  # type: ignore[no-any-return]

    def num_parameters(self) -> int:
        """Trainable parameters, tied weights counted once."""
        return sum(parameter.numel() for parameter in self.parameters())
