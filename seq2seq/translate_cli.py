"""`seq2seq translate`: one translation per input line, streamed from stdin or a file.

`--n-best K` writes the K best translations of each line instead, in the style of Moses n-best
lists (`line ||| translation ||| score`, lines counted from 0), for rescoring and analysis.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from itertools import islice
from typing import Any, TextIO

from tqdm import tqdm

from seq2seq.precision import PRECISIONS
from seq2seq.translator import Translator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seq2seq translate`."""
    parser.add_argument("--model", required=True, help="checkpoint file (.pt)")
    parser.add_argument("--input", help="source file, one sentence a line (default: stdin)")
    parser.add_argument("--output", help="where translations go (default: stdout)")
    parser.add_argument(
        "--n-best",
        type=int,
        default=0,
        help="write the N best of the beam per line, 'line ||| translation ||| score' "
        "(lines are translated whole; N at most --beam-size)",
    )
    add_decoding_arguments(
        parser, precision_help="fp32 as trained, bf16, or int8 (CPU: about twice as fast)"
    )


def add_decoding_arguments(parser: argparse.ArgumentParser, *, precision_help: str) -> None:
    """How to translate, shared by `seq2seq translate` and `seq2seq evaluate`."""
    parser.add_argument("--beam-size", type=int, default=5, help="1 is greedy search")
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="beam scores are log-prob / length ** this (0: no normalisation)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parser.add_argument("--max-length", type=int, default=256, help="output subwords at most")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help=precision_help)
    parser.add_argument(
        "--no-split",
        dest="split_sentences",
        action="store_false",
        help="translate each line whole instead of sentence by sentence",
    )


def decoding_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `Translator.translate` options of `add_decoding_arguments`, checked (ValueError)."""
    if min(args.beam_size, args.batch_size, args.max_length) < 1:
        raise ValueError("--beam-size, --batch-size and --max-length must be at least 1")
    if args.length_penalty < 0:
        raise ValueError(f"--length-penalty must be 0 or more, got {args.length_penalty}")
    return {
        "beam_size": args.beam_size,
        "batch_size": args.batch_size,
        "length_penalty": args.length_penalty,
        "max_length": args.max_length,
        "split_sentences": args.split_sentences,
    }


def run(args: argparse.Namespace) -> int:
    """Translate line by line; interactive input is answered one line at a time."""
    options = decoding_options(args)
    if not 0 <= args.n_best <= args.beam_size:
        raise ValueError(f"--n-best must be between 0 and --beam-size ({args.beam_size})")
    translator = Translator.load(args.model, device=args.device, precision=args.precision)
    with _streams(args) as (source, target):
        chunk = 1 if source.isatty() else 8 * args.batch_size
        progress = tqdm(unit="sent", disable=not sys.stderr.isatty() or source.isatty())
        done = 0
        for lines in _chunks(source, chunk):
            if args.n_best:
                target.writelines(_nbest_lines(translator, lines, done, args.n_best, options))
            else:
                target.writelines(f"{line}\n" for line in translator.translate(lines, **options))
            target.flush()
            progress.update(len(lines))
            done += len(lines)
        progress.close()
    return 0


@contextmanager
def _streams(args: argparse.Namespace) -> Iterator[tuple[TextIO, TextIO]]:
    """--input (or stdin) and --output (or stdout), the files closed afterwards."""
    with ExitStack() as stack:
        source, target = sys.stdin, sys.stdout
        if args.input:
            source = stack.enter_context(open(args.input, encoding="utf-8"))
        if args.output:
            target = stack.enter_context(open(args.output, "w", encoding="utf-8"))
        yield source, target


def _nbest_lines(
    translator: Translator, lines: list[str], first: int, n_best: int, options: dict[str, Any]
) -> Iterator[str]:
    """Moses n-best lines of `lines`, numbered from `first`; an empty line gets one empty entry."""
    search = {key: value for key, value in options.items() if key != "split_sentences"}
    ranked = translator.translate_nbest(lines, n_best=n_best, **search)
    for number, hypotheses in enumerate(ranked, start=first):
        texts = translator.decode([hypothesis.tokens for hypothesis in hypotheses])
        scores = [hypothesis.score for hypothesis in hypotheses]
        for text, score in zip(texts or [""], scores or [0.0], strict=True):
            yield f"{number} ||| {text} ||| {score:.4f}\n"


def _chunks(source: TextIO, size: int) -> Iterator[list[str]]:
    lines = (line.rstrip("\r\n") for line in source)
    while chunk := list(islice(lines, size)):
        yield chunk
