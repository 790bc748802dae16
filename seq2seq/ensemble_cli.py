"""`seq2seq ensemble`: join checkpoints into one file that translates as their ensemble.

`seq2seq ensemble A.pt B.pt -o E.pt` writes one checkpoint holding every model (they must share
their tokenizers); `translate`, `evaluate`, `serve` and `Translator.load` read it like any model
file, and every decoder step averages the members' log-probabilities. An ensemble file among
the inputs adds its members.
"""

from __future__ import annotations

import argparse
import sys

from seq2seq.arguments import UsageError
from seq2seq.checkpoint import load_joined, save_checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seq2seq ensemble`."""
    parser.add_argument("models", nargs="+", metavar="MODEL", help="checkpoint files (.pt)")
    parser.add_argument("-o", "--output", required=True, help="the ensemble's file (.pt)")


def run(args: argparse.Namespace) -> int:
    """Join the checkpoints and write the ensemble's file."""
    if len(args.models) < 2:
        raise UsageError("an ensemble joins two checkpoints or more")
    joined = load_joined(args.models)
    save_checkpoint(joined, args.output)
    members = len(joined.metadata["ensemble"])
    print(f"{args.output}: the ensemble of {members} models", file=sys.stderr)
    return 0
