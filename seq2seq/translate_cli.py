"""`seq2seq translate`: one translation per input line, streamed from stdin or a file.

`--n-best K` writes the K best translations of each line instead, in the style of Moses n-best
lists (`line ||| translation ||| score`, lines counted from 0), for rescoring and analysis.
Several `--model`s translate as their ensemble (`seq2seq.ensemble`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from itertools import islice
from typing import TextIO

from tqdm import tqdm

from seq2seq.arguments import UsageError, add_decoding_arguments, search_options
from seq2seq.search import SearchOptions
from seq2seq.translator import Translator


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seq2seq translate`."""
    parser.add_argument(
        "--model",
        required=True,
        action="append",
        help="checkpoint file (.pt); repeat it to translate with the ensemble of several models "
        "(they must share their tokenizers)",
    )
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


def run(args: argparse.Namespace) -> int:
    """Translate line by line; interactive input is answered one line at a time."""
    if not 0 <= args.n_best <= args.beam_size:
        raise UsageError(f"--n-best must be between 0 and --beam-size ({args.beam_size})")
    options = search_options(args, n_best=max(args.n_best, 1))
    translator = Translator.load_ensemble(
        args.model, device=args.device, precision=args.precision, shortlist=args.shortlist
    )
    with _streams(args) as (source, target):
        chunk = 1 if source.isatty() else 8 * args.batch_size
        progress = tqdm(unit="sent", disable=not sys.stderr.isatty() or source.isatty())
        done = 0
        for lines in _chunks(source, chunk):
            if args.n_best:
                target.writelines(_nbest_lines(translator, lines, done, options, args.batch_size))
            else:
                translations = translator.translate(
                    lines, options, split_sentences=args.split_sentences, batch_size=args.batch_size
                )
                target.writelines(f"{line}\n" for line in translations)
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
    translator: Translator, lines: list[str], first: int, options: SearchOptions, batch_size: int
) -> Iterator[str]:
    """Moses n-best lines of `lines` (each translated whole), numbered from `first`: as many
    as the beam found, at most `options.n_best`; an empty line gets one empty entry."""
    ranked = translator.search(translator.encode(lines), options, batch_size=batch_size)
    for number, (hypotheses, texts) in enumerate(
        zip(ranked, translator.decode_ranked(ranked), strict=True), start=first
    ):
        scores = [hypothesis.score for hypothesis in hypotheses] or [0.0]
        for text, score in zip(texts, scores, strict=True):
            yield f"{number} ||| {text} ||| {score:.4f}\n"


def _chunks(source: TextIO, size: int) -> Iterator[list[str]]:
    lines = (line.rstrip("\r\n") for line in source)
    while chunk := list(islice(lines, size)):
        yield chunk
