"""`seq2seq shortlist`: learn a lexical shortlist from parallel text and store it in a checkpoint.

    seq2seq shortlist --model best.pt --source train.de --target train.en -o best.pt

reads the two sides line by line (plain or .gz), cuts them with the checkpoint's own tokenizers,
learns p(target piece | source piece) with IBM Model 1 and writes the checkpoint with its
`Shortlist` (see `seq2seq.shortlist`). `translate --shortlist`, `evaluate --shortlist` and the
server's `shortlist: true` then decode over each batch's list only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path

from seq2seq.arguments import UsageError
from seq2seq.checkpoint import load_checkpoint, save_checkpoint
from seq2seq.shortlist import MAX_PAIRS, Shortlist, build_shortlist
from seq2seq.tokenizer import TokenizerPair
from training.data import open_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seq2seq shortlist`."""
    parser.add_argument("--model", required=True, help="checkpoint file (.pt)")
    parser.add_argument("--source", required=True, help="source side, a sentence a line (.gz ok)")
    parser.add_argument("--target", required=True, help="target side, line by line with --source")
    parser.add_argument("-o", "--output", required=True, help="checkpoint written (may be --model)")
    parser.add_argument("--best", type=int, default=10, help="target pieces kept a source piece")
    parser.add_argument("--frequent", type=int, default=100, help="commonest target pieces kept")
    parser.add_argument("--iterations", type=int, default=5, help="EM rounds of IBM Model 1")
    parser.add_argument("--max-pairs", type=int, default=MAX_PAIRS, help="sentence pairs read")


def run(args: argparse.Namespace) -> int:
    """Learn the shortlist and write the checkpoint with it."""
    if args.best < 1 or args.frequent < 0 or args.iterations < 1 or args.max_pairs < 1:
        raise UsageError("--best, --iterations and --max-pairs must be positive, --frequent >= 0")
    started = time.perf_counter()
    checkpoint = load_checkpoint(args.model)
    sources, targets = _read_pairs(Path(args.source), Path(args.target), args.max_pairs)
    checkpoint.shortlist = shortlist_from_text(
        checkpoint.tokenizers,
        sources,
        targets,
        best=args.best,
        frequent=args.frequent,
        iterations=args.iterations,
        max_pairs=args.max_pairs,
    )
    save_checkpoint(checkpoint, args.output)
    seconds = time.perf_counter() - started
    print(
        f"{args.output}: shortlist of {args.best} target pieces a source piece and the "
        f"{args.frequent} commonest, from {len(sources):,} sentence pairs ({seconds:.1f} s)",
        file=sys.stderr,
    )
    return 0


def shortlist_from_text(
    tokenizers: TokenizerPair,
    sources: Sequence[str],
    targets: Sequence[str],
    *,
    best: int = 10,
    frequent: int = 100,
    iterations: int = 5,
    max_pairs: int = MAX_PAIRS,
) -> Shortlist:
    """The `Shortlist` of line-aligned `sources` and `targets`, cut by `tokenizers`."""
    pairs = zip(tokenizers.src.encode(sources), tokenizers.tgt.encode(targets), strict=True)
    return build_shortlist(
        pairs,
        tokenizers.src.vocab_size,
        tokenizers.tgt.vocab_size,
        best=best,
        frequent=frequent,
        iterations=iterations,
        max_pairs=max_pairs,
    )


def _read_pairs(source: Path, target: Path, limit: int) -> tuple[list[str], list[str]]:
    """The first `limit` lines of both files; UsageError if they differ in length."""
    sources, targets = _head(source, limit), _head(target, limit)
    if len(sources) != len(targets):
        raise UsageError(f"{source} and {target} differ in length: they must be line-aligned")
    return sources, targets


def _head(path: Path, limit: int) -> list[str]:
    """The first `limit` lines of a plain or .gz file."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with open_text(path) as file:
        return [line.rstrip("\r\n") for line in islice(file, limit)]
