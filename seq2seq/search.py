"""Batched greedy and beam search over `encode` / `decode_step` of a `Seq2Seq` or an `Ensemble`.

Every sentence of a batch, and every beam of every sentence, moves through one tensor;
rows of sentences that have finished are dropped so they stop costing compute. The search
reads a model's state only as a tuple of tensors with the batch in dim 1, whatever the cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from seq2seq.config import BOS_ID, EOS_ID, PAD_ID
from seq2seq.model import State

StopFn = Callable[[], bool]
"""Asked before every decoder step: True ends the search early (its caller has gone)."""

BeamFinish = Literal["best", "all"]
"""When a sentence's beam search is done: "best", as soon as its likeliest candidate ends
(OpenNMT-py's rule: exact without a length penalty, since extending a live beam only lowers
its log-prob); "all", once `beam_size` hypotheses have ended (more steps, rarely better)."""


class Decodable(Protocol):
    """What the search needs of a model: `Seq2Seq` and `Ensemble` have it."""

    def encode(self, src: Tensor, src_len: Tensor) -> State:
        """src [B, S], src_len [B] -> the decoder's initial state, batch in dim 1."""
        ...

    def decode_step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """tokens [B] -> next-token scores [B, V] (logits or log-probabilities), next state."""
        ...


@dataclass(frozen=True)
class SearchOptions:
    """How to decode: beam width, hypotheses kept, length normalisation, output length limit."""

    beam_size: int = 5
    """Hypotheses extended at every step; 1 is greedy search."""
    n_best: int = 1
    """Hypotheses returned per sentence, best first (at most `beam_size`)."""
    length_penalty: float = 1.0
    """Beam scores are log-prob / length ** this (0: no normalisation)."""
    max_length_a: float = 1.5
    """Output limit per sentence: ceil(a * source length + b) subwords ..."""
    max_length_b: int = 10
    """... (see `max_length_a`) ..."""
    max_length: int = 256
    """... and never more than this."""
    finish: BeamFinish = "all"
    """When a sentence's beam search is done (see `BeamFinish`)."""

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {self.beam_size}")
        if not 1 <= self.n_best <= self.beam_size:
            raise ValueError(
                f"n_best must be in [1, beam_size={self.beam_size}], got {self.n_best}"
            )
        if self.max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {self.max_length}")
        if self.length_penalty < 0:
            raise ValueError(f"length_penalty must be 0 or more, got {self.length_penalty}")


@dataclass(frozen=True)
class Hypothesis:
    """One finished translation: target ids without BOS/EOS and its length-normalised log-prob."""

    tokens: list[int]
    score: float


def max_lengths(src_len: Tensor, *, a: float, b: int, cap: int) -> Tensor:
    """Per-sentence output limit `ceil(a * src_len + b)`, clamped to [1, cap]: [B] long."""
    return (src_len.float() * a + b).ceil().long().clamp(1, cap)


def pad_sources(sources: Sequence[list[int]], device: torch.device) -> tuple[Tensor, Tensor]:
    """Id lists -> src [B, S] on `device`, padded with PAD_ID, and src_len [B] on the CPU."""
    src_len = torch.tensor([len(ids) for ids in sources])  # [B]
    src = torch.full((len(sources), int(src_len.max())), PAD_ID, dtype=torch.long)  # [B, S]
    for row, ids in enumerate(sources):
        src[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return src.to(device), src_len


def select_rows(state: State, rows: Tensor) -> State:
    """The state of batch rows `rows` [b] only."""
    return tuple(part.index_select(1, rows) for part in state)  # [L, b, H] each


def _repeat(state: State, times: int) -> State:
    return tuple(part.repeat_interleave(times, 1) for part in state)  # [L, B*K, H] each


@torch.inference_mode()
def greedy_search(
    model: Decodable,
    src: Tensor,
    src_len: Tensor,
    *,
    max_len: Tensor,
    stop: StopFn | None = None,
    columns: Tensor | None = None,
) -> list[list[int]]:
    """Most likely next token at every step; src [B, S], max_len [B] -> ids per sentence.
    `stop` returning True ends every sentence where it is. `columns` [v]: the target id of
    each column of the model's scores (a shortlisted model's); None, column i is id i."""
    batch, device = src.size(0), src.device
    state = model.encode(src, src_len)  # [L, B, H] each
    steps = int(max_len.max())
    output = torch.full((batch, steps), EOS_ID, dtype=torch.long, device=device)  # [B, T]
    tokens = torch.full((batch,), BOS_ID, dtype=torch.long, device=device)  # [b]
    rows = torch.arange(batch, device=device)  # [b] sentence of each live row
    limits = max_len.to(device)  # [b]
    for step in range(steps):
        if stop is not None and stop():
            break
        logits, state = model.decode_step(tokens, state)  # [b, V]
        tokens = logits.argmax(dim=-1)  # [b]
        if columns is not None:
            tokens = columns[tokens]  # [b] target ids
        output[rows, step] = tokens
        alive = (tokens != EOS_ID) & (limits > step + 1)  # [b]
        if not bool(alive.all()):
            keep = alive.nonzero().squeeze(1)  # [b']
            if keep.numel() == 0:
                break
            rows, tokens, limits = rows[keep], tokens[keep], limits[keep]
            state = select_rows(state, keep)
    return [_until_eos(row) for row in output.tolist()]


def _until_eos(ids: list[int]) -> list[int]:
    return ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids


@dataclass
class _Beams:
    """The live part of a batched beam search; row i*K + k is beam k of live sentence i."""

    state: State  # [L, b*K, H] each
    tokens: Tensor  # [b*K] last token of each beam
    scores: Tensor  # [b, K] summed log-probs
    history: Tensor  # [b, K, t] tokens so far
    limits: Tensor  # [b] max_len of each live sentence
    sentences: Tensor  # [b] original index of each live sentence
    num_finished: Tensor  # [b]

    def keep(self, keep: Tensor, origin: Tensor, beam_size: int) -> None:
        """Reorder beams to their `origin` [b, K] and keep only sentences `keep` [b']."""
        rows = torch.arange(origin.size(0), device=origin.device).unsqueeze(1) * beam_size
        rows = (rows + origin)[keep].reshape(-1)  # [b'*K]
        self.state = select_rows(self.state, rows)
        self.tokens = self.tokens.view(-1, beam_size)[keep].reshape(-1)
        for name in ("scores", "history", "limits", "sentences", "num_finished"):
            setattr(self, name, getattr(self, name)[keep])


@torch.inference_mode()
def beam_search(
    model: Decodable,
    src: Tensor,
    src_len: Tensor,
    *,
    max_len: Tensor,
    beam_size: int = 5,
    length_penalty: float = 1.0,
    n_best: int = 1,
    finish: BeamFinish = "all",
    stop: StopFn | None = None,
    columns: Tensor | None = None,
) -> list[list[Hypothesis]]:
    """The `n_best` best of `beam_size` hypotheses per sentence, best first.

    A sentence is done once `beam_size` hypotheses have ended (by EOS or at its `max_len`),
    or with `finish="best"` once its likeliest candidate ends and `n_best` have ended.
    Scores are log-prob / length ** `length_penalty`; beam size 1 is exactly greedy search.
    `stop` returning True ends the search: sentences not done get what has ended so far.
    `columns` [v]: the target id of each column of the model's scores (see `greedy_search`).
    """
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be in [1, beam_size={beam_size}], got {n_best}")
    beams = _start(model, src, src_len, max_len, beam_size)
    finished: list[list[Hypothesis]] = [[] for _ in range(src.size(0))]
    for step in range(int(max_len.max())):
        if stop is not None and stop():
            break
        logits, beams.state = model.decode_step(beams.tokens, beams.state)  # [b*K, V]
        if step == 0:  # one row per sentence so far: all its beams are the same BOS
            logits = logits.repeat_interleave(beam_size, dim=0)  # [B*K, V]
            beams.state = _repeat(beams.state, beam_size)
        top_scores, origin, token = _candidates(logits, beams.scores, 2 * beam_size)
        if columns is not None:
            token = columns[token]  # [b, 2K] target ids
        _finish(beams, finished, top_scores, origin, token, step, length_penalty)
        if finish == "best":  # done: the likeliest candidate has just ended
            first = (token[:, 0] == EOS_ID) & (beams.num_finished >= n_best)  # [b]
            beams.num_finished.masked_fill_(first, beam_size)
        live = top_scores.masked_fill(token == EOS_ID, -math.inf)  # [b, 2K]
        beams.scores, pick = live.topk(beam_size, dim=1)  # [b, K]
        origin, token = origin.gather(1, pick), token.gather(1, pick)  # [b, K]
        history = beams.history.gather(1, origin.unsqueeze(2).expand_as(beams.history))
        beams.history = torch.cat([history, token.unsqueeze(2)], dim=2)  # [b, K, t+1]
        beams.tokens = token.reshape(-1)  # [b*K]
        keep = (beams.num_finished < beam_size).nonzero().squeeze(1)  # [b']
        if keep.numel() == 0:
            break
        beams.keep(keep, origin, beam_size)
    return [sorted(hyps, key=lambda hyp: -hyp.score)[:n_best] for hyps in finished]


def _candidates(logits: Tensor, scores: Tensor, count: int) -> tuple[Tensor, Tensor, Tensor]:
    """The `count` best extensions of each sentence's beams: summed log-probs, origin beam and
    token, [b, count] each, best first. logits [b*K, V], scores [b, K].

    Every one of them is among its own beam's `count` likeliest tokens, so only those are
    scored: a top-k and a log-sum-exp per beam, rather than a log-softmax, a sum and a top-k
    over all K * V candidates (half of the non-matmul time of a beam step).
    """
    batch, beam_size = scores.shape
    logits = logits.float()  # [b*K, V]
    per_beam = min(count, logits.size(-1))
    top_logits, top_tokens = logits.topk(per_beam, dim=-1)  # [b*K, c]
    log_probs = top_logits - logits.logsumexp(dim=-1, keepdim=True)  # [b*K, c]
    total = scores.unsqueeze(2) + log_probs.view(batch, beam_size, per_beam)  # [b, K, c]
    best, index = total.view(batch, -1).topk(count, dim=1)  # [b, count] into K*c
    token = top_tokens.view(batch, -1).gather(1, index)  # [b, count]
    return best, index // per_beam, token


def _start(
    model: Decodable, src: Tensor, src_len: Tensor, max_len: Tensor, beam_size: int
) -> _Beams:
    batch, device = src.size(0), src.device
    state = model.encode(src, src_len)  # [L, B, H] each
    scores = torch.full((batch, beam_size), -math.inf, device=device)  # [B, K]
    scores[:, 0] = 0.0  # all beams start identical: keep one so the first step is not K copies
    return _Beams(
        state=state,  # one row per sentence until the first step has run
        tokens=torch.full((batch,), BOS_ID, dtype=torch.long, device=device),
        scores=scores,
        history=torch.empty((batch, beam_size, 0), dtype=torch.long, device=device),
        limits=max_len.to(device),
        sentences=torch.arange(batch, device=device),
        num_finished=torch.zeros(batch, dtype=torch.long, device=device),
    )


def _finish(
    beams: _Beams,
    finished: list[list[Hypothesis]],
    top_scores: Tensor,
    origin: Tensor,
    token: Tensor,
    step: int,
    length_penalty: float,
) -> None:
    """Move candidates that end now (EOS among the best K, or the length limit) to `finished`."""
    beam_size = beams.scores.size(1)
    last = (beams.limits == step + 1).unsqueeze(1)  # [b, 1]
    ends = (token[:, :beam_size] == EOS_ID) | last  # [b, K]
    ends &= top_scores[:, :beam_size] > -math.inf
    if not bool(ends.any()):
        return
    beams.num_finished += ends.sum(dim=1)
    norm = float(step + 1) ** length_penalty
    for row, col in ends.nonzero().tolist():
        ids = beams.history[row, origin[row, col]].tolist()
        last_token = int(token[row, col])
        if last_token != EOS_ID:
            ids.append(last_token)
        score = float(top_scores[row, col]) / norm
        finished[int(beams.sentences[row])].append(Hypothesis(ids, score))
