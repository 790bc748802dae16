"""Length-bucketed batches under a token budget, shuffled per epoch, resumable and sharded.

`TokenBatchSampler` sorts examples by source length, then target length (random tie-break),
cuts the order into batches whose padded size stays within `batch_tokens`, and shuffles the
batches. Sorting by source first gives most batches a single source length, which the
encoder reads in one fused LSTM call instead of a packed sequence (about 1.1x faster steps
on Multi30k, for a few percent of target padding that the loss never projects). The order depends
only on (seed, epoch), so a resumed run or another DDP rank computes the same list; each rank
takes every `world_size`-th batch, and `position` says how many of its batches were used.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from seq2seq import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    """One padded training batch."""

    src: Tensor  # [B, S]
    src_len: Tensor  # [B]
    tgt_in: Tensor  # [B, T] BOS + target
    tgt_out: Tensor  # [B, T] target + EOS

    @property
    def num_tokens(self) -> int:
        """Target tokens that count in the loss (EOS included, padding not)."""
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device) -> Batch:
        """The same batch on `device` (src_len stays on the CPU, as packing wants)."""
        return Batch(
            self.src.to(device), self.src_len, self.tgt_in.to(device), self.tgt_out.to(device)
        )


def collate(src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> Batch:
    """Pad id lists into a `Batch`."""
    return Batch(
        pad_rows(src),  # [B, S]
        torch.tensor([len(s) for s in src]),  # [B]
        pad_rows([[BOS_ID, *t] for t in tgt]),  # [B, T]
        pad_rows([[*t, EOS_ID] for t in tgt]),  # [B, T]
    )


def pad_rows(rows: Sequence[Sequence[int]]) -> Tensor:
    """Id lists right-padded with PAD_ID into one [B, L] tensor, built from a single flat tensor
    (a tensor per row and `pad_sequence` took 2.5% of a training step)."""
    lengths = torch.tensor([len(row) for row in rows])  # [B]
    flat = torch.tensor(list(itertools.chain.from_iterable(rows)), dtype=torch.long)  # [sum L]
    padded = torch.full((len(rows), int(lengths.max())), PAD_ID, dtype=torch.long)  # [B, L]
    padded[torch.arange(padded.size(1)) < lengths.unsqueeze(1)] = flat  # row-major order
    return padded


def batch_size_ok(count: int, longest: int, *, batch_tokens: int, max_sentences: int) -> bool:
    """Whether `count` sentences padded to `longest` fit the budget."""
    return count <= max_sentences and count * longest <= batch_tokens


class EpochPosition:
    """The resumable place of a batch source: epoch, and batches of it already taken."""

    epoch: int
    position: int

    def next_epoch(self) -> None:
        """Move to the start of the following epoch."""
        self.epoch, self.position = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        """Where this source is: enough to continue exactly."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a `state_dict`."""
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class TokenBatchSampler(EpochPosition):
    """Batches of example indices; iterate for the current epoch from the current position."""

    def __init__(
        self,
        lengths: Sequence[tuple[int, int]],
        *,
        batch_tokens: int,
        max_sentences: int = 1 << 30,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.lengths = [(src + 0, tgt + 1) for src, tgt in lengths]  # target gets BOS/EOS
        self.batch_tokens, self.max_sentences = batch_tokens, max_sentences
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.position = 0, 0
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")

    def batches(self, epoch: int) -> list[list[int]]:
        """Every batch of `epoch`, before sharding (identical on every rank)."""
        rng = random.Random(self.seed * 1_000_003 + epoch)
        ties = [rng.random() for _ in self.lengths] if self.shuffle else [0.0] * len(self.lengths)
        order = sorted(range(len(self.lengths)), key=lambda i: (*self.lengths[i], ties[i]))
        batches = self._cut(order)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def _cut(self, order: list[int]) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for index in order:
            size = max(self.lengths[index])
            if current and not batch_size_ok(
                len(current) + 1,
                max(longest, size),
                batch_tokens=self.batch_tokens,
                max_sentences=self.max_sentences,
            ):
                batches.append(current)
                current, longest = [], 0
            current.append(index)
            longest = max(longest, size)
        return [*batches, current] if current else batches

    def shard(self, epoch: int) -> list[list[int]]:
        """This rank's batches of `epoch`; every rank gets the same count (wrapping around)."""
        batches = self.batches(epoch)
        if self.world_size > 1:
            per_rank = -(-len(batches) // self.world_size)
            batches = (batches * 2)[: per_rank * self.world_size]
        return batches[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self.shard(self.epoch))

    def __iter__(self) -> Iterator[list[int]]:
        """The remaining batches of the current epoch; `position` advances as they are taken."""
        for batch in self.shard(self.epoch)[self.position :]:
            self.position += 1
            yield batch


def stream_batches(
    examples: Iterable[dict[str, list[int]]],
    *,
    batch_tokens: int,
    max_sentences: int = 1 << 30,
    buffer_size: int = 20_000,
    seed: int = 0,
) -> Iterator[Batch]:
    """Token-budget batches from a stream: fill a buffer, sort it by length, shuffle its batches."""
    rng = random.Random(seed)
    buffer: list[dict[str, list[int]]] = []
    for example in examples:
        buffer.append(example)
        if len(buffer) >= buffer_size:
            yield from _buffer_batches(buffer, rng, batch_tokens, max_sentences)
            buffer = []
    yield from _buffer_batches(buffer, rng, batch_tokens, max_sentences)


def _buffer_batches(
    buffer: list[dict[str, list[int]]], rng: random.Random, batch_tokens: int, max_sentences: int
) -> Iterator[Batch]:
    lengths = [(len(row["src_ids"]), len(row["tgt_ids"])) for row in buffer]
    sampler = TokenBatchSampler(
        lengths, batch_tokens=batch_tokens, max_sentences=max_sentences, seed=rng.randrange(1 << 30)
    )
    for indices in sampler:
        rows = [buffer[i] for i in indices]
        yield collate([row["src_ids"] for row in rows], [row["tgt_ids"] for row in rows])


class DatasetBatches:
    """`Batch`es of an encoded in-memory `datasets.Dataset`, in `TokenBatchSampler` order."""

    def __init__(self, dataset: Any, sampler: TokenBatchSampler) -> None:
        self.dataset, self.sampler = dataset, sampler

    @property
    def epoch(self) -> int:
        """The epoch being read."""
        return self.sampler.epoch

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return len(self.sampler)

    def __iter__(self) -> Iterator[Batch]:
        for indices in self.sampler:
            rows = self.dataset[indices]
            yield collate(rows["src_ids"], rows["tgt_ids"])

    def next_epoch(self) -> None:
        """Start the following epoch."""
        self.sampler.next_epoch()

    def state_dict(self) -> dict[str, int]:
        """Epoch and position within it."""
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from `state_dict` output."""
        self.sampler.load_state_dict(state)


class StreamBatches(EpochPosition):
    """`Batch`es of a streamed, encoded split; resuming skips the batches already used."""

    def __init__(
        self,
        stream: Any,
        *,
        batch_tokens: int,
        max_sentences: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        from datasets.distributed import split_dataset_by_node

        self.stream = split_dataset_by_node(stream, rank=rank, world_size=world_size)
        self.batch_tokens, self.max_sentences, self.seed = batch_tokens, max_sentences, seed
        self.epoch, self.position = 0, 0

    def __iter__(self) -> Iterator[Batch]:
        batches = stream_batches(
            iter(self.stream),
            batch_tokens=self.batch_tokens,
            max_sentences=self.max_sentences,
            seed=self.seed * 1_000_003 + self.epoch,
        )
        for number, batch in enumerate(batches):
            if number >= self.position:
                self.position += 1
                yield batch
