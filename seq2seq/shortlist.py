"""Lexical shortlists: decode over the target pieces a batch's sources make likely, not all.

A decoder step's largest matrix product is the output layer, every target piece's row. A
`Shortlist` keeps, for each source piece, the `best` target pieces that most likely translate
it (IBM Model 1 probabilities p(target | source), learnt by EM from the parallel text), and
the `frequent` commonest target pieces. A batch decodes over the union of its sources' lists
(`Shortlist.vocab`, a few hundred pieces for a few sentences) through `Shortlisted`, which
computes only those rows of the output layer; the search maps the columns back to ids.

It changes what is computed: a piece outside the list cannot be produced, and log-probs are
normalised over the list. `seq2seq shortlist` adds one to a checkpoint; `--shortlist` uses it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seq2seq.config import EOS_ID, UNK_ID
from seq2seq.ensemble import Ensemble
from seq2seq.model import Projection, Seq2Seq, State

ALWAYS = (UNK_ID, EOS_ID)
"""Target ids in every batch's list: a sentence must be able to end."""


@dataclass(frozen=True)
class Shortlist:
    """Each source piece's likeliest target pieces, and the commonest target pieces."""

    best: Tensor
    """[source vocab, k] long: row s holds the k target ids likeliest to translate piece s."""
    frequent: Tensor
    """[n] long: the n commonest target ids."""
    tgt_vocab_size: int

    def __post_init__(self) -> None:
        for name in ("best", "frequent"):
            ids = getattr(self, name)
            if not isinstance(ids, Tensor) or ids.dtype != torch.long or ids.numel() == 0:
                raise ValueError(f"shortlist {name} must be a non-empty tensor of ids")
            if int(ids.min()) < 0 or int(ids.max()) >= self.tgt_vocab_size:
                raise ValueError(f"shortlist {name} holds ids outside the target vocabulary")
        if self.best.dim() != 2:
            raise ValueError("shortlist best must be [source vocabulary, k]")

    def vocab(self, sources: Sequence[Sequence[int]]) -> Tensor:
        """The sorted target ids [v] that a batch of `sources` (source ids) decodes over."""
        ids = torch.tensor([i for source in sources for i in source], dtype=torch.long)  # [n]
        chosen = torch.zeros(self.tgt_vocab_size, dtype=torch.bool)  # [T]
        chosen[self.frequent] = True
        chosen[list(ALWAYS)] = True
        chosen[self.best[ids].flatten()] = True
        return chosen.nonzero().squeeze(1)  # [v], sorted

    def to_dict(self) -> dict[str, Tensor | int]:
        """Plain-data form, as stored in a checkpoint."""
        return {"best": self.best, "frequent": self.frequent, "tgt_vocab_size": self.tgt_vocab_size}

    @classmethod
    def from_dict(cls, data: dict[str, Tensor | int]) -> Shortlist:
        """Rebuild from `to_dict` output (`ValueError` when it does not fit together)."""
        size = data["tgt_vocab_size"]
        if not isinstance(size, int):
            raise ValueError("shortlist tgt_vocab_size must be an int")
        return cls(best=data["best"], frequent=data["frequent"], tgt_vocab_size=size)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Lexicon:
    """p(target | source) for the piece pairs seen together: flat key s * T + t, and its value."""

    keys: Tensor  # [P] long, sorted
    probs: Tensor  # [P] float
    tgt_vocab_size: int

    def top(self, source_vocab_size: int, k: int) -> Tensor:
        """[source vocab, k] the k likeliest targets of each source piece (EOS where fewer)."""
        sources = self.keys // self.tgt_vocab_size  # [P]
        order = self.probs.argsort(descending=True, stable=True)  # [P]
        order = order[sources[order].argsort(stable=True)]  # by source, likeliest first
        grouped = sources[order]  # [P]
        rank = torch.arange(len(order)) - torch.searchsorted(grouped, grouped)  # [P]
        kept = rank < k
        table = torch.full((source_vocab_size, k), EOS_ID, dtype=torch.long)
        table[grouped[kept], rank[kept]] = self.keys[order[kept]] % self.tgt_vocab_size
        return table


def train_lexicon(
    pairs: Iterable[tuple[Sequence[int], Sequence[int]]],
    src_vocab_size: int,
    tgt_vocab_size: int,
    *,
    iterations: int = 5,
) -> Lexicon:
    """IBM Model 1 by EM over (source ids, target ids) pairs: each target piece is explained
    by one source piece of its sentence, or by none (an extra NULL source, not returned)."""
    links = _Links.of(pairs, null=src_vocab_size, tgt_vocab_size=tgt_vocab_size)
    probs = torch.ones(len(links.keys))  # [P] uniform start
    for _ in range(iterations):
        probs = links.expectation_maximisation(probs)
    real = links.source < src_vocab_size  # [P] NULL's own pairs dropped
    return Lexicon(links.keys[real], probs[real], tgt_vocab_size)


@dataclass(frozen=True)
class _Links:
    """Every (source piece, target position) pairing of a corpus: its pair key and position."""

    keys: Tensor  # [P] unique pair keys s * T + t, sorted
    source: Tensor  # [P] the source piece of each key
    pair: Tensor  # [N] which key each pairing is
    position: Tensor  # [N] which target position (over the corpus) it explains
    positions: int

    @classmethod
    def of(
        cls, pairs: Iterable[tuple[Sequence[int], Sequence[int]]], *, null: int, tgt_vocab_size: int
    ) -> _Links:
        """The pairings of `pairs`, each source with an extra `null` piece."""
        keys, positions, count = [], [], 0
        for source, target in pairs:
            src = torch.tensor([*source, null], dtype=torch.long)  # [S+1]
            tgt = torch.tensor(target, dtype=torch.long)  # [T]
            keys.append((src.unsqueeze(0) * tgt_vocab_size + tgt.unsqueeze(1)).flatten())
            positions.append(torch.arange(count, count + len(tgt)).repeat_interleave(len(src)))
            count += len(tgt)
        if not count:
            raise ValueError("no sentence pairs to learn a shortlist from (empty, or too long)")
        unique, pair = torch.unique(torch.cat(keys), return_inverse=True)  # [P], [N]
        return cls(unique, unique // tgt_vocab_size, pair, torch.cat(positions), count)

    def expectation_maximisation(self, probs: Tensor) -> Tensor:
        """One EM round: p(t | s) [P] -> the next estimate [P]."""
        weight = probs[self.pair]  # [N]
        total = torch.zeros(self.positions).index_add_(0, self.position, weight)  # [positions]
        share = weight / total[self.position]  # [N] posterior of each pairing
        counts = torch.zeros(len(self.keys)).index_add_(0, self.pair, share)  # [P]
        per_source = torch.zeros(int(self.source[-1]) + 1).index_add_(0, self.source, counts)
        return counts / per_source[self.source]  # [P]


MAX_PIECES = 100
"""Pairs with a longer side are left out: IBM Model 1 pairs every source and target piece."""
MAX_PAIRS = 200_000
"""Sentence pairs a shortlist is learnt from at most: enough for a lexicon of common pieces."""
MAX_LINKS = 15_000_000
"""(source piece, target piece) pairings at most, over all sentence pairs: about 65 bytes each
at the EM's peak, so 1 GB (Multi30k's 29,000 pairs have 7.4 million: 480 MB)."""


def build_shortlist(
    pairs: Iterable[tuple[Sequence[int], Sequence[int]]],
    src_vocab_size: int,
    tgt_vocab_size: int,
    *,
    best: int = 10,
    frequent: int = 100,
    iterations: int = 5,
    max_pairs: int = MAX_PAIRS,
) -> Shortlist:
    """A `Shortlist` of `best` targets per source piece and the `frequent` commonest targets,
    from the first `max_pairs` of `pairs` with both sides 1 to `MAX_PIECES` pieces long (fewer
    if they pair more than `MAX_LINKS` pieces)."""
    if best < 1 or frequent < 0:
        raise ValueError(f"a shortlist needs best >= 1 and frequent >= 0, got {best}, {frequent}")
    usable = list(islice(_within_budget(pair for pair in pairs if _usable(*pair)), max_pairs))
    lexicon = train_lexicon(usable, src_vocab_size, tgt_vocab_size, iterations=iterations)
    targets = torch.tensor([i for _, target in usable for i in target], dtype=torch.long)
    counts = torch.bincount(targets, minlength=tgt_vocab_size)  # [T]
    commonest = counts.argsort(descending=True, stable=True)[: max(frequent, 1)]  # [n]
    return Shortlist(lexicon.top(src_vocab_size, best), commonest, tgt_vocab_size)


def _usable(source: Sequence[int], target: Sequence[int]) -> bool:
    return 0 < len(source) <= MAX_PIECES and 0 < len(target) <= MAX_PIECES


def _within_budget(
    pairs: Iterable[tuple[Sequence[int], Sequence[int]]],
) -> Iterator[tuple[Sequence[int], Sequence[int]]]:
    """`pairs` until their pairings (NULL included) would pass `MAX_LINKS`."""
    links = 0
    for source, target in pairs:
        links += (len(source) + 1) * len(target)
        if links > MAX_LINKS:
            return
        yield source, target


class Shortlisted:
    """A `Seq2Seq` or `Ensemble` whose steps score only the target ids `vocab` [v]: column j
    of its scores is target id `vocab[j]` (the search's `columns`). `weights` are the members'
    full output layers (`output_weights`), worked out once by the caller."""

    def __init__(
        self, model: Seq2Seq | Ensemble, weights: Sequence[tuple[Tensor, Tensor]], vocab: Tensor
    ) -> None:
        self.model = model
        self.vocab = vocab.to(weights[0][0].device)  # [v]
        self.layers = [_rows(weight, bias, self.vocab) for weight, bias in weights]

    def encode(self, src: Tensor, src_len: Tensor) -> State:
        """The model's own encoder: src [B, S] -> initial state."""
        return self.model.encode(src, src_len)

    def decode_step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """tokens [B] (target ids) -> scores [B, v] over `vocab` and the next state."""
        if isinstance(self.model, Ensemble):
            return self.model.decode_step(tokens, state, outputs=self.layers)
        return self.model.decode_step(tokens, state, output=self.layers[0])


def _rows(weight: Tensor, bias: Tensor, vocab: Tensor) -> Projection:
    """The output layer cut to rows `vocab`: weight [V, H] -> [v, H], bias [V] -> [v]."""
    return partial(F.linear, weight=weight.index_select(0, vocab), bias=bias.index_select(0, vocab))


def output_weights(model: Seq2Seq | Ensemble) -> list[tuple[Tensor, Tensor]]:
    """Each member's output weight [V, H] and bias [V] (an int8 layer's in fp32)."""
    members = model.models if isinstance(model, Ensemble) else [model]
    return [_weights(member.decoder.output) for member in members]


def _weights(layer: nn.Module) -> tuple[Tensor, Tensor]:
    if isinstance(layer, nn.Linear):
        return layer.weight.detach(), layer.bias.detach()
    quantized: Any = layer  # a dynamically quantized Linear: weight() and bias() are methods
    return quantized.weight().dequantize(), quantized.bias().detach()
