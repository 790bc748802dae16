"""Command-line pieces shared by the commands that translate (`translate`, `evaluate`).

`add_decoding_arguments` adds the search and device options, `search_options` turns them
into one checked `SearchOptions`. `UsageError` is how any command reports a user mistake:
`seq2seq.cli` prints it as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
from typing import get_args

from seq2seq.precision import PRECISIONS
from seq2seq.search import BeamFinish, SearchOptions


class UsageError(Exception):
    """A user mistake reported as one line, exit status 2."""


def add_decoding_arguments(parser: argparse.ArgumentParser, *, precision_help: str) -> None:
    """How to translate: search, batch size, device, precision, sentence splitting."""
    parser.add_argument("--beam-size", type=int, default=5, help="1 is greedy search")
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="beam scores are log-prob / length ** this (0: no normalisation)",
    )
    parser.add_argument(
        "--beam-finish",
        choices=get_args(BeamFinish),
        default=SearchOptions.finish,
        help="a sentence's search ends when its likeliest candidate ends ('best', as "
        "OpenNMT-py does) or once --beam-size hypotheses have ended ('all')",
    )
    parser.add_argument("--batch-size", type=int, default=128, help="sentences per batch")
    parser.add_argument("--max-length", type=int, default=256, help="output subwords at most")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help=precision_help)
    parser.add_argument(
        "--shortlist",
        action="store_true",
        help="decode over the checkpoint's shortlist (`seq2seq shortlist`): each batch scores "
        "only its sources' likely target pieces, faster on a CPU, rarely a different output",
    )
    parser.add_argument(
        "--no-split",
        dest="split_sentences",
        action="store_false",
        help="translate each line whole instead of sentence by sentence",
    )


def search_options(args: argparse.Namespace, *, n_best: int = 1) -> SearchOptions:
    """The `SearchOptions` of `add_decoding_arguments` (UsageError for values out of range)."""
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        return SearchOptions(
            beam_size=args.beam_size,
            n_best=n_best,
            length_penalty=args.length_penalty,
            max_length=args.max_length,
            finish=args.beam_finish,
        )
    except ValueError as error:  # name the option as the user wrote it
        message = str(error).replace("beam_size", "--beam-size").replace("n_best", "--n-best")
        message = message.replace("max_length", "--max-length")
        raise UsageError(message.replace("length_penalty", "--length-penalty")) from error
