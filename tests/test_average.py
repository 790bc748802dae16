"""Checkpoint averaging: `train.keep_checkpoints` keeps step models; `seq2seq average`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY, tiny_overrides

from seq2seq import SearchOptions, Translator, load_checkpoint
from seq2seq.cli import main
from training.config import load_config
from training.train import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run validated every 4 of 12 steps that keeps its last two step models."""
    tmp_path = tmp_path_factory.mktemp("average")
    overrides = tiny_overrides(
        tmp_path, "run", train__max_steps=12, train__eval_every=4, train__keep_checkpoints=2
    )
    train(load_config(TINY, overrides))
    return tmp_path / "run"


def test_training_keeps_the_newest_step_models(run_dir: Path) -> None:
    assert sorted(path.name for path in run_dir.glob("step-*.pt")) == ["step-12.pt", "step-8.pt"]
    step = load_checkpoint(run_dir / "step-8.pt")
    assert step.metadata["step"] == 8 and not step.training_state  # exported: no resume state


def test_average_is_the_mean_of_the_weights(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = [run_dir / "step-8.pt", run_dir / "step-12.pt"]
    output = tmp_path / "averaged.pt"
    assert main(["average", *map(str, inputs), "-o", str(output)]) == 0
    assert "averaged 2 checkpoints (steps 8, 12)" in capsys.readouterr().out
    first, second = (load_checkpoint(path).model_state for path in inputs)
    averaged = load_checkpoint(output)
    for name, tensor in averaged.model_state.items():
        torch.testing.assert_close(tensor, (first[name] + second[name]) / 2)
    assert not torch.equal(first["decoder.output.weight"], second["decoder.output.weight"])
    assert averaged.metadata["averaged"]["steps"] == [8, 12]
    assert averaged.metadata["step"] == 12 and not averaged.training_state
    newest = load_checkpoint(inputs[1]).shortlist
    assert averaged.shortlist is not None and newest is not None  # the run's list is kept
    assert torch.equal(averaged.shortlist.best, newest.best)


def test_a_model_averaged_with_itself_translates_identically(run_dir: Path, tmp_path: Path) -> None:
    model = run_dir / "step-12.pt"
    output = tmp_path / "self.pt"
    assert main(["average", str(model), str(model), "-o", str(output)]) == 0
    texts = ["eins zwei drei", "vier", "sieben acht neun zehn"]
    expected = Translator.load(model, device="cpu").translate(texts, SearchOptions(beam_size=3))
    assert (
        Translator.load(output, device="cpu").translate(texts, SearchOptions(beam_size=3))
        == expected
    )


def test_bad_averages_are_one_line_errors(
    run_dir: Path, tiny_checkpoint_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    step = str(run_dir / "step-12.pt")
    cases = [
        ([step], "give at least two checkpoints"),
        ([step, str(tiny_checkpoint_path)], "cannot be averaged with"),
        ([step, str(tmp_path / "missing.pt")], "no such checkpoint file"),
        ([step, step, "-o", step], "is one of the checkpoints being averaged"),
    ]
    for arguments, reason in cases:
        if "-o" not in arguments:
            arguments = [*arguments, "-o", str(tmp_path / "out.pt")]
        assert main(["average", *arguments]) == 2
        error = capsys.readouterr().err
        assert error.startswith("seq2seq average: error:") and reason in error, error
        assert error.count("\n") == 1
    assert not (tmp_path / "out.pt").exists()
