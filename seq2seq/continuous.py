"""Continuous greedy decoding: sentences join and leave one running batch between steps.

`greedy_search` decodes a fixed batch until its longest sentence ends. Rows that finish early
leave, so the batch thins out towards the end, and sentences that arrive meanwhile wait for
the next batch. `GreedyStream` keeps a single batch going instead (iteration-level batching):
`admit` encodes new sentences and appends their rows (or, split across two threads, `encode`
then `join`), `step` moves every row on by one token and returns the sentences that just
ended. A server that admits requests as they arrive keeps the decoder's matrix multiplies
full and answers each sentence when it is done, not when the longest sentence of its batch is.

Each row goes through the same arithmetic as in `greedy_search` (same encoder call, same
`decode_step`, same length limit), so a sentence gets the same tokens whoever shares its batch.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch
from torch import Tensor

from seq2seq.config import BOS_ID, EOS_ID
from seq2seq.model import Seq2Seq, State
from seq2seq.search import max_lengths, pad_sources, select_rows

Key = TypeVar("Key", bound=Hashable)
"""Whatever the caller uses to recognise a sentence when it comes back."""


@dataclass(frozen=True)
class Finished(Generic[Key]):
    """A sentence that has ended: its key and its target ids (no BOS/EOS)."""

    key: Key
    tokens: list[int]


@dataclass(frozen=True)
class Encoded(Generic[Key]):
    """Sentences encoded by `GreedyStream.encode`, ready to `join` the batch."""

    keys: list[Key]
    state: State | None  # [L, n, H] each; None when no source had any token
    limits: list[int]  # most tokens per sentence
    finished: list[Finished[Key]]  # the empty sources: nothing to decode


class GreedyStream(Generic[Key]):
    """A running greedy-decoding batch that sentences can join at any step."""

    def __init__(
        self,
        model: Seq2Seq,
        *,
        device: torch.device,
        max_length_a: float = 1.5,
        max_length_b: int = 10,
        max_length: int = 256,
    ) -> None:
        """Output limits as in `max_lengths`: ceil(a * source length + b), at most max_length."""
        self.model, self.device = model, device
        self.length_rule = (max_length_a, max_length_b, max_length)
        self._keys: list[Key] = []  # one per row
        self._outputs: list[list[int]] = []  # tokens so far, per row
        self._limits: list[int] = []  # most tokens per row
        self._tokens: Tensor | None = None  # [b] last token of each row
        self._state: State | None = None  # [L, b, H] each

    def __len__(self) -> int:
        """Rows (sentences) being decoded."""
        return len(self._keys)

    @property
    def keys(self) -> list[Key]:
        """The keys of the sentences being decoded, in row order."""
        return list(self._keys)

    def admit(self, keys: Sequence[Key], sources: Sequence[list[int]]) -> list[Finished[Key]]:
        """Encode `sources` (ids from `Translator.encode`) and add them as rows; an empty
        source has nothing to translate and is returned finished at once."""
        return self.join(self.encode(keys, sources))

    @torch.inference_mode()
    def encode(self, keys: Sequence[Key], sources: Sequence[list[int]]) -> Encoded[Key]:
        """The encoder's half of `admit`, which leaves the batch alone: another thread may
        encode newcomers while this one steps, and `join` them between two steps."""
        finished = [Finished(key, []) for key, ids in zip(keys, sources, strict=True) if not ids]
        live = [(key, ids) for key, ids in zip(keys, sources, strict=True) if ids]
        if not live:
            return Encoded([], None, [], finished)
        src, src_len = pad_sources([ids for _, ids in live], self.device)  # [n, S], [n]
        state = self.model.encode(src, src_len)  # [L, n, H] each
        a, b, cap = self.length_rule
        limits = max_lengths(src_len, a=a, b=b, cap=cap).tolist()
        return Encoded([key for key, _ in live], state, limits, finished)

    def join(self, encoded: Encoded[Key]) -> list[Finished[Key]]:
        """Add encoded sentences as rows; returns those that were finished already."""
        if encoded.state is None:
            return encoded.finished
        tokens = torch.full((len(encoded.keys),), BOS_ID, dtype=torch.long, device=self.device)
        if self._tokens is None or self._state is None:
            self._tokens, self._state = tokens, encoded.state  # [n], [L, n, H] each
        else:
            self._tokens = torch.cat([self._tokens, tokens])  # [b + n]
            self._state = (
                torch.cat([self._state[0], encoded.state[0]], 1),  # [L, b + n, H]
                torch.cat([self._state[1], encoded.state[1]], 1),
            )
        self._keys.extend(encoded.keys)
        self._outputs.extend([] for _ in encoded.keys)
        self._limits.extend(encoded.limits)
        return encoded.finished

    @torch.inference_mode()
    def step(self) -> list[Finished[Key]]:
        """One decoder step for every row; returns the sentences that ended with it."""
        if self._tokens is None or self._state is None:
            return []
        logits, state = self.model.decode_step(self._tokens, self._state)  # [b, V]
        tokens = logits.argmax(dim=-1)  # [b]
        finished: list[Finished[Key]] = []
        keep: list[int] = []
        for row, token in enumerate(tokens.tolist()):
            output = self._outputs[row]
            if token != EOS_ID:
                output.append(token)
            if token == EOS_ID or len(output) >= self._limits[row]:
                finished.append(Finished(self._keys[row], output))
            else:
                keep.append(row)
        self._tokens, self._state = tokens, state
        if finished:
            self._keep(keep)
        return finished

    def remove(self, keys: set[Key]) -> None:
        """Stop decoding the sentences with these keys (e.g. their client has gone)."""
        keep = [row for row, key in enumerate(self._keys) if key not in keys]
        if len(keep) < len(self._keys):
            self._keep(keep)

    def clear(self) -> None:
        """Drop every row."""
        self._keep([])

    def _keep(self, rows: list[int]) -> None:
        if not rows or self._tokens is None or self._state is None:
            self._keys, self._outputs, self._limits = [], [], []
            self._tokens = self._state = None
            return
        index = torch.tensor(rows, device=self.device)  # [b']
        self._tokens = self._tokens.index_select(0, index)  # [b']
        self._state = select_rows(self._state, index)  # [L, b', H] each
        self._keys = [self._keys[row] for row in rows]
        self._outputs = [self._outputs[row] for row in rows]
        self._limits = [self._limits[row] for row in rows]
