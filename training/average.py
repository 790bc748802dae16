"""`seq2seq average`: one model whose weights are the mean of several checkpoints of a run.

The last checkpoints of a run differ by the noise of their final updates, and the mean of
their weights usually translates at least as well as the best of them, at no training cost.
`train.keep_checkpoints: N` keeps a run's last N validated checkpoints as `step-<step>.pt`.
The checkpoints must share the model configuration, tokenizers and languages; the result is
an exported model (no resume state) whose metadata says what it averages.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from seq2seq import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from seq2seq.arguments import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `seq2seq average`."""
    parser.add_argument("checkpoints", nargs="+", help="two or more checkpoints of one run")
    parser.add_argument("-o", "--output", required=True, help="the averaged model (.pt)")


def run(args: argparse.Namespace) -> int:
    """Average the checkpoints and write the result."""
    paths = [Path(path) for path in args.checkpoints]
    output = Path(args.output)
    if len(paths) < 2:
        raise UsageError("give at least two checkpoints to average")
    if output.resolve() in {path.resolve() for path in paths}:
        raise UsageError(f"--output {output} is one of the checkpoints being averaged")
    averaged = average_checkpoints(paths)
    save_checkpoint(averaged, output)
    steps = ", ".join(str(step) for step in averaged.metadata["averaged"]["steps"])
    print(f"averaged {len(paths)} checkpoints (steps {steps}) into {output}")
    return 0


def average_checkpoints(paths: Sequence[Path]) -> Checkpoint:
    """The element-wise mean of the weights in `paths`, summed in float64.

    Raises `CheckpointError` naming the file that is unreadable or does not match the first.
    """
    first = load_checkpoint(paths[0])
    totals = {name: tensor.double() for name, tensor in first.model_state.items()}
    newest, steps = first, [first.metadata.get("step")]
    for path in paths[1:]:
        checkpoint = load_checkpoint(path)
        _check_same_model(first, checkpoint, paths[0], path)
        for name, tensor in checkpoint.model_state.items():
            totals[name] += tensor.double()
        steps.append(checkpoint.metadata.get("step"))
        if (checkpoint.metadata.get("step") or 0) >= (newest.metadata.get("step") or 0):
            newest = checkpoint
    state = {
        name: _mean(total, len(paths), first.model_state[name]) for name, total in totals.items()
    }
    return Checkpoint(
        config=first.config,
        model_state=state,
        tokenizers=first.tokenizers,
        src_lang=first.src_lang,
        tgt_lang=first.tgt_lang,
        metadata=_metadata(newest, paths, steps),
        shortlist=newest.shortlist,  # the tokenizers are the same, so it fits the mean
    )


def _metadata(newest: Checkpoint, paths: Sequence[Path], steps: list[Any]) -> dict[str, Any]:
    """The newest checkpoint's metadata (less its own validation record), with the sources."""
    metadata = {key: value for key, value in newest.metadata.items() if key != "val"}
    metadata["averaged"] = {"files": [path.name for path in paths], "steps": steps}
    return metadata


def _mean(total: Tensor, count: int, like: Tensor) -> Tensor:
    return (total / count).to(like.dtype) if like.is_floating_point() else like


def _check_same_model(first: Checkpoint, other: Checkpoint, first_path: Path, path: Path) -> None:
    differences = {
        "model configurations": first.config != other.config,
        "source tokenizers": first.tokenizers.src.proto != other.tokenizers.src.proto,
        "target tokenizers": first.tokenizers.tgt.proto != other.tokenizers.tgt.proto,
        "languages": (first.src_lang, first.tgt_lang) != (other.src_lang, other.tgt_lang),
        "weight names": first.model_state.keys() != other.model_state.keys(),
    }
    for what, differs in differences.items():
        if differs:
            raise CheckpointError(f"{path}: cannot be averaged with {first_path}: {what} differ")
