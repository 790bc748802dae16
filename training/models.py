"""`seq2seq train-models`: train every preset whose model file is missing, one after another.

A preset `training/configs/NAME.yaml` makes the model `MODELS_DIR/NAME.pt` (its best
checkpoint), so `seq2seq serve --models MODELS_DIR` then serves every pair. Without preset
names it trains the Multi30k pairs the server is meant to offer (`PAIRS`). Interrupted, it
keeps what is done; run again, it skips those models and resumes an unfinished one from its
run directory (`last.pt`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from seq2seq.arguments import UsageError
from training.train import train_from_config

CONFIGS = Path(__file__).resolve().parent / "configs"
PAIRS = ("de_en", "en_de", "fr_en", "en_fr", "cs_en", "en_cs")
"""The Multi30k language pairs served by default: every non-English language to and from
English, so that any two of them are joined through English."""
DEFAULT_PRESETS = tuple(f"multi30k_{pair}" for pair in PAIRS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seq2seq train-models`."""
    parser.add_argument(
        "presets",
        nargs="*",
        metavar="PRESET",
        help=f"preset names or YAML files (default: {', '.join(DEFAULT_PRESETS)})",
    )
    parser.add_argument("--models", default="models", help="where the model files go [models]")
    parser.add_argument(
        "--runs", help="run directories go in RUNS/<preset> (default: each preset's run_dir)"
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="--key=value",
        help="a config override for every preset, e.g. --override=--train.max_minutes=5",
    )


def run(args: argparse.Namespace) -> int:
    """Train what is missing; returns the exit status."""
    presets = [preset_path(name) for name in args.presets or DEFAULT_PRESETS]
    for preset in presets:
        target = Path(args.models) / f"{preset.stem}.pt"
        if target.exists():
            print(f"{target} exists: skipping {preset.name}", file=sys.stderr)
            continue
        runs = [f"--run_dir={Path(args.runs) / preset.stem}"] if args.runs else []
        train_model(preset, target, [*args.override, *runs])
    return 0


def preset_path(name: str) -> Path:
    """A preset's YAML file from its name (or path); `UsageError` naming the known ones."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else CONFIGS / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(found.stem for found in CONFIGS.glob("*.yaml")))
        raise UsageError(f"no preset {path} (presets: {known})")
    return path


def preset_for(model: Path) -> Path:
    """The preset that makes `model`: the one of the same name."""
    return preset_path(model.stem)


def train_model(preset: Path, target: Path, overrides: Sequence[str] = ()) -> None:
    """Train `preset` (resuming its run if one was interrupted) and copy its best checkpoint
    to `target`."""
    from training.config import load_config

    run_dir = Path(load_config(str(preset), list(overrides)).run_dir)
    resume = (run_dir / "last.pt").is_file()
    how = "resuming" if resume else "training"
    print(f"{target} does not exist: {how} {preset.name} in {run_dir}", file=sys.stderr)
    best = train_from_config(str(preset), overrides, resume=resume)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, target)
