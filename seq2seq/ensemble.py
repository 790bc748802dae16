"""Ensembles: several models over the same tokenizers, decoding as one.

At every decoder step each member scores the next token and the ensemble's score is the mean
of the members' log-probabilities (Sutskever et al. 2014 gained 4.1 BLEU with five LSTMs).
`Ensemble` has `encode` and `decode_step` like `Seq2Seq`, so greedy and beam search, batched as
ever, `Translator`, and with it the server, use it unchanged. Its state is its members' states
one after another. `EnsembleConfig` lists the members' configs; a checkpoint holding it is one
file that `Translator.load` and `seq2seq serve` read like any other (see
`seq2seq.checkpoint.join_checkpoints` and `seq2seq ensemble`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from seq2seq.config import ModelConfig
from seq2seq.model import Projection, Seq2Seq, State


@dataclass(frozen=True)
class EnsembleConfig:
    """The configs of an ensemble's members, in order; their vocabularies are the same."""

    members: tuple[ModelConfig, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one model")
        sizes = {(m.src_vocab_size, m.tgt_vocab_size) for m in self.members}
        if len(sizes) > 1:
            raise ValueError(f"an ensemble's models need one vocabulary size, got {sorted(sizes)}")

    @property
    def src_vocab_size(self) -> int:
        """The members' source vocabulary size."""
        return self.members[0].src_vocab_size

    @property
    def tgt_vocab_size(self) -> int:
        """The members' target vocabulary size."""
        return self.members[0].tgt_vocab_size

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form, as stored in a checkpoint."""
        return {"ensemble": [member.to_dict() for member in self.members]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnsembleConfig:
        """Rebuild from `to_dict` output."""
        if set(data) != {"ensemble"} or not isinstance(data["ensemble"], list):
            raise ValueError("an ensemble config holds one key, 'ensemble', a list of configs")
        return cls(tuple(ModelConfig.from_dict(member) for member in data["ensemble"]))


AnyConfig = ModelConfig | EnsembleConfig
"""What a checkpoint's model is: one model, or an ensemble of them."""


def config_from_dict(data: dict[str, Any]) -> AnyConfig:
    """A checkpoint's stored model config: an ensemble's, or one model's."""
    return EnsembleConfig.from_dict(data) if "ensemble" in data else ModelConfig.from_dict(data)


class Ensemble(nn.Module):
    """Members that decode together: each step's scores are their mean log-probabilities."""

    def __init__(self, members: Sequence[Seq2Seq]) -> None:
        super().__init__()
        self.config = EnsembleConfig(tuple(member.config for member in members))
        self.members = nn.ModuleList(members)
        self.state_parts = [2 if member.config.cell == "lstm" else 1 for member in members]

    @property
    def models(self) -> list[Seq2Seq]:
        """The members, in order."""
        return [member for member in self.members if isinstance(member, Seq2Seq)]

    def encode(self, src: Tensor, src_len: Tensor) -> State:
        """src [B, S], src_len [B] -> every member's initial decoder state, one after another."""
        return tuple(part for member in self.models for part in member.encode(src, src_len))

    def decode_step(
        self, tokens: Tensor, state: State, outputs: Sequence[Projection] | None = None
    ) -> tuple[Tensor, State]:
        """tokens [B] -> the members' mean log-probabilities [B, V] (fp32) and the next state;
        `outputs`, one a member, replace the members' own output layers."""
        log_probs: list[Tensor] = []
        next_state: list[Tensor] = []
        layers = outputs if outputs is not None else [None] * len(self.models)
        members = zip(self.models, self._split(state), layers, strict=True)
        for member, own, output in members:
            logits, own = member.decode_step(tokens, own, output)  # [B, V]
            log_probs.append(logits.float().log_softmax(dim=-1))
            next_state.extend(own)
        return torch.stack(log_probs).mean(dim=0), tuple(next_state)  # [B, V]

    def _split(self, state: State) -> list[State]:
        """The ensemble's state cut into its members' states."""
        states, start = [], 0
        for parts in self.state_parts:
            states.append(state[start : start + parts])
            start += parts
        return states

    def num_parameters(self) -> int:
        """Trainable parameters of all members."""
        return sum(parameter.numel() for parameter in self.parameters())


def build_model(config: AnyConfig) -> Seq2Seq | Ensemble:
    """The model, or the ensemble, that `config` describes (freshly initialised)."""
    if isinstance(config, EnsembleConfig):
        return Ensemble([Seq2Seq(member) for member in config.members])
    return Seq2Seq(config)
