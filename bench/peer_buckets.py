"""What OpenNMT-py's bucketing trains on: its batching rule replayed over the peer's own data.

OpenNMT-py 3.5 reads `bucket_size` examples (cycling over the corpus), sorts them by source
then target length, cuts them into batches of at most `batch_size` padded tokens (the longer
side, target with BOS and EOS) and keeps one copy of a source sentence a batch. On a corpus
smaller than the bucket, the copies of rare (long) sentences fall into one batch and are
dropped, so it trains on shorter sentences than the corpus holds. This prints, per bucket size,
the share of examples kept, sentences a batch and source / target pieces a sentence, to set
beside its training log (`bsz: source/target/sentences`).

    python -m bench.peer_buckets --buckets 262144 29000
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from bench import peers


@dataclass(frozen=True)
class Example:
    """One training pair as the batcher sees it."""

    source: str
    src_len: int
    tgt_len: int  # with BOS and EOS


def read_examples() -> list[Example]:
    """The peer's encoded training pairs, in corpus order."""
    sp = peers.PEERS / "work" / "sp"
    sources = (sp / "train.sp.de").read_text().splitlines()
    targets = (sp / "train.sp.en").read_text().splitlines()
    pairs = zip(sources, targets, strict=True)
    return [Example(src, len(src.split()), len(tgt.split()) + 2) for src, tgt in pairs]


def batches(bucket: list[Example], batch_tokens: int) -> list[list[Example]]:
    """OpenNMT-py's cut of a sorted bucket, one copy of a source sentence a batch."""
    done: list[list[Example]] = []
    batch: list[Example] = []
    seen: set[str] = set()
    longest = 0
    for example in sorted(bucket, key=lambda e: (e.src_len, e.tgt_len)):
        if example.source in seen:
            continue
        seen.add(example.source)
        batch.append(example)
        longest = max(longest, example.src_len, example.tgt_len)
        if len(batch) * longest > batch_tokens:  # the last one overflowed: it starts the next
            done.append(batch[:-1])
            batch, seen = batch[-1:], set()  # as it does: the carried one is not remembered
            longest = max(example.src_len, example.tgt_len)
        elif len(batch) * longest == batch_tokens:
            done.append(batch)
            batch, seen, longest = [], set(), 0
    return [*done, batch] if batch else done


def describe(corpus: list[Example], bucket_size: int, batch_tokens: int) -> str:
    """One line: what the first bucket of `bucket_size` examples trains on."""
    bucket = [corpus[i % len(corpus)] for i in range(bucket_size)]
    cut = batches(bucket, batch_tokens)
    kept = [example for batch in cut for example in batch]
    src = sum(e.src_len for e in kept) / len(kept)
    tgt = sum(e.tgt_len - 1 for e in kept) / len(kept)  # as its log counts: EOS, not BOS
    return (
        f"bucket {bucket_size}: {bucket_size / len(corpus):.1f} passes, "
        f"{len(kept) / bucket_size:.1%} of examples kept, {len(kept) / len(cut):.1f} sentences "
        f"a batch, {src:.2f} source / {tgt:.2f} target pieces a sentence"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buckets", type=int, nargs="+", default=[262_144, 29_000])
    parser.add_argument("--batch-tokens", type=int, default=1600)
    args = parser.parse_args()
    reason = peers.missing()
    if reason:
        print(f"skipped: {reason}")
        return 0
    corpus = read_examples()
    source = sum(e.src_len for e in corpus) / len(corpus)
    target = sum(e.tgt_len - 1 for e in corpus) / len(corpus)
    print(f"corpus: {len(corpus)} pairs, {source:.2f} source / {target:.2f} target pieces a pair")
    for size in args.buckets:
        print(describe(corpus, size, args.batch_tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
