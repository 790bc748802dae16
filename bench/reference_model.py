"""A reference-size Multi30k de->en model for the decoding benchmarks: found, or trained briefly.

Decoding speed depends on how long the outputs are, so the benchmarks want a model that has
learned to stop; a few minutes of training is enough for that. Run on its own with
`python -m bench.reference_model --minutes 5` to (re)train `runs/perf/model.pt`.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from bench import data
from seq2seq import BOS_ID, EOS_ID, PAD_ID, Checkpoint, ModelConfig, Seq2Seq, TokenizerPair
from seq2seq.checkpoint import save_checkpoint

OWN_MODEL = Path("runs/perf/model.pt")
"""Where this module saves the model it trains."""
SEARCH = ("runs/quality/best.pt", "models/*.pt", str(OWN_MODEL))
"""Checkpoints tried in order when no --model is given."""
VOCAB_SIZE = 8000

Batch = tuple[Tensor, Tensor, Tensor, Tensor]


def find_model(minutes: float = 5.0) -> Path:
    """The first checkpoint matching `SEARCH`, else a freshly trained one (with a message)."""
    for pattern in SEARCH:
        found = sorted(Path().glob(pattern))
        if found:
            return found[0]
    print(f"no trained model found ({', '.join(SEARCH)}); training one for {minutes:g} min")
    return train(minutes=minutes, path=OWN_MODEL)


def make_batch(pairs: Sequence[tuple[list[int], list[int]]]) -> Batch:
    """src [B, S], src_len [B], tgt_in [B, T] (BOS + target), tgt_out [B, T] (target + EOS)."""
    src = pad_sequence([torch.tensor(s) for s, _ in pairs], batch_first=True, padding_value=PAD_ID)
    src_len = torch.tensor([len(s) for s, _ in pairs])  # [B]
    tgt_in = pad_sequence([torch.tensor([BOS_ID, *t]) for _, t in pairs], batch_first=True)
    tgt_out = pad_sequence([torch.tensor([*t, EOS_ID]) for _, t in pairs], batch_first=True)
    return src, src_len, tgt_in, tgt_out  # PAD_ID is 0, pad_sequence's default


def bucketed_batches(
    pairs: Sequence[tuple[list[int], list[int]]], *, batch_size: int, seed: int
) -> Iterator[Batch]:
    """Endless shuffled batches of sentences of similar target length (little padding)."""
    rng = random.Random(seed)
    while True:
        order = sorted(range(len(pairs)), key=lambda i: (len(pairs[i][1]), rng.random()))
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        rng.shuffle(chunks)
        for chunk in chunks:
            yield make_batch([pairs[i] for i in chunk])


def encoded_pairs(tokenizers: TokenizerPair, split: str) -> list[tuple[list[int], list[int]]]:
    """Tokenized (source, target) ids of a Multi30k split, empty pairs dropped."""
    raw = data.read_pairs(split)
    src = tokenizers.src.encode([s for s, _ in raw])
    tgt = tokenizers.tgt.encode([t for _, t in raw])
    return [(s, t) for s, t in zip(src, tgt, strict=True) if s and t]


def train(*, minutes: float, path: Path, seed: int = 0) -> Path:
    """Train SentencePiece 8k models and a reference-size model for `minutes`; save to `path`."""
    data.require("train")
    torch.manual_seed(seed)
    tokenizers = TokenizerPair.train(data.read_pairs("train"), vocab_size=VOCAB_SIZE, seed=seed)
    pairs = encoded_pairs(tokenizers, "train")
    model = Seq2Seq(ModelConfig(tokenizers.src.vocab_size, tokenizers.tgt.vocab_size))
    steps = _fit(model, pairs, seconds=minutes * 60, seed=seed)
    checkpoint = Checkpoint.from_model(
        model.eval(),
        tokenizers,
        src_lang="de",
        tgt_lang="en",
        metadata={"step": steps, "note": f"bench.reference_model, {minutes:g} min"},
    )
    save_checkpoint(checkpoint, path)
    print(f"saved {path} after {steps} steps")
    return path


def _fit(
    model: Seq2Seq, pairs: list[tuple[list[int], list[int]]], *, seconds: float, seed: int
) -> int:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=PAD_ID)
    model.train()
    start, step = time.perf_counter(), 0
    for src, src_len, tgt_in, tgt_out in bucketed_batches(pairs, batch_size=128, seed=seed):
        loss = loss_fn(model(src, src_len, tgt_in).flatten(0, 1), tgt_out.flatten())
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 50 == 0:
            print(
                f"step {step} loss {loss.item():.3f} {time.perf_counter() - start:.0f}s", flush=True
            )
        if time.perf_counter() - start > seconds:
            return step
    return step


def main() -> None:
    """Command line: train the benchmark model."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=OWN_MODEL)
    args = parser.parse_args()
    train(minutes=args.minutes, path=args.out)


if __name__ == "__main__":
    main()
