"""`seq2seq train-models`: trains each preset whose model file is missing, resumably, and skips
the others."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY, write_corpus

from seq2seq import load_checkpoint
from seq2seq.cli import main
from training.models import DEFAULT_PRESETS, preset_path


def test_missing_models_are_trained_and_present_ones_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_corpus(tmp_path / "data")
    models, runs = tmp_path / "models", tmp_path / "runs"
    argv = ["train-models", str(TINY), "--models", str(models), "--runs", str(runs)]
    argv += [f"--override=--data.path={data}", "--override=--train.max_steps=3"]
    assert main(argv) == 0
    model = models / "tiny_train.pt"
    assert load_checkpoint(model).metadata["step"] == 3
    assert (runs / "tiny_train" / "last.pt").is_file()  # the run directory asked for
    assert "training tiny_train.yaml" in capsys.readouterr().err
    before = model.stat().st_mtime_ns
    assert main(argv) == 0
    assert model.stat().st_mtime_ns == before
    assert "exists: skipping tiny_train.yaml" in capsys.readouterr().err


def test_the_default_presets_are_the_served_pairs() -> None:
    names = [preset_path(name).stem for name in DEFAULT_PRESETS]
    assert names == [
        f"multi30k_{pair}" for pair in ("de_en", "en_de", "fr_en", "en_fr", "cs_en", "en_cs")
    ]


def test_an_unknown_preset_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-models", "multi30k_xx_yy"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq train-models: error: no preset") and "multi30k_de_en" in error
