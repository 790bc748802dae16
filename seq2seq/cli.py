"""The `seq2seq` command: a thin dispatcher to `train`, `train-models`, `evaluate`, `average`,
`ensemble`, `translate`, `shortlist`, `inspect` and `serve`.

Each subcommand lives in a module with `add_arguments(parser)` and `run(args) -> int`; it is
imported only when called, so `seq2seq translate` never pays for the server's imports.
Expected failures (bad arguments, files, checkpoints) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from seq2seq.arguments import UsageError

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("training.train", "train a model from a YAML config"),
    "evaluate": ("training.evaluate", "score a model (BLEU, chrF) on a test set"),
    "average": ("training.average", "average the weights of checkpoints of one run"),
    "train-models": ("training.models", "train every preset whose model file is missing"),
    "ensemble": ("seq2seq.ensemble_cli", "join checkpoints into one file that decodes as one"),
    "translate": ("seq2seq.translate_cli", "translate lines from stdin or a file"),
    "shortlist": ("training.shortlist", "add a lexical shortlist for faster decoding"),
    "serve": ("serve.cli", "run the HTTP translation server"),
    "inspect": ("seq2seq.inspect_cli", "show one sentence's gates, cells and units that count"),
}


def _expected_errors() -> tuple[type[BaseException], ...]:
    from seq2seq.checkpoint import CheckpointError
    from seq2seq.tokenizer import TokenizerError

    return (UsageError, CheckpointError, TokenizerError, OSError, ValueError)


def _top_parser() -> argparse.ArgumentParser:
    from seq2seq import __version__

    parser = argparse.ArgumentParser(
        prog="seq2seq", description="LSTM encoder-decoder machine translation."
    )
    parser.add_argument("--version", action="version", version=f"seq2seq {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def _load(name: str) -> ModuleType:
    module_name = COMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise UsageError(f"'{name}' is not available in this installation") from error
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        _top_parser().parse_args(args)  # prints help or a usage error and exits
        return 2
    name = args[0]
    try:
        module = _load(name)
        parser = argparse.ArgumentParser(prog=f"seq2seq {name}", description=COMMANDS[name][1])
        module.add_arguments(parser)
        parsed = parser.parse_args(args[1:])
        return int(module.run(parsed))
    except _expected_errors() as error:
        print(f"seq2seq {name}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"seq2seq {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
