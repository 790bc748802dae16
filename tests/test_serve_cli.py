"""`seq2seq serve` on the command line: a flag for every setting, one-line errors with exit
status 2 (bad values, bad checkpoints in either kind of inference), training what is missing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from seq2seq import load_checkpoint, save_checkpoint
from seq2seq.cli import main as cli_main
from serve.cli import add_arguments, settings_from_args, train_missing
from serve.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_every_setting_has_a_flag_with_its_documentation() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {action.dest: action for action in parser._actions if action.dest != "help"}
    assert set(flags) == set(Settings.model_fields)
    for name, action in flags.items():
        assert action.option_strings[0] == "--" + name.replace("_", "-")
        description = Settings.model_fields[name].description or ""
        assert action.help and action.help.startswith(description) and description
        assert f"SEQ2SEQ_{name.upper()}" in action.help


def test_command_line_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQ2SEQ_PORT", "9003")
    monkeypatch.setenv("SEQ2SEQ_HOST", "0.0.0.0")
    monkeypatch.setenv("SEQ2SEQ_INFERENCE", "thread")
    args = parse("--model", "a.pt", "--model", "b.pt", "--port", "9100", "--beam-size", "4")
    settings = settings_from_args(args)
    assert (settings.model, settings.port, settings.beam_size) == (["a.pt", "b.pt"], 9100, 4)
    assert settings.host == "0.0.0.0"  # not given on the command line: the environment's
    settings = settings_from_args(parse("--inference", "process", "--workers", "2"))
    assert (settings.inference, settings.workers) == ("process", 2)
    assert settings_from_args(parse("--idle-unload-s", "2.5", "--max-loaded", "3")).max_loaded == 3


def test_booleans_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from_args(parse()).split_sentences
    assert not settings_from_args(parse("--no-split-sentences")).split_sentences
    monkeypatch.setenv("SEQ2SEQ_SPLIT_SENTENCES", "false")
    assert not settings_from_args(parse()).split_sentences
    assert settings_from_args(parse("--split-sentences")).split_sentences
    origins = settings_from_args(parse("--cors-origins", "http://a", "--cors-origins", "http://b"))
    assert origins.cors_origins == ["http://a", "http://b"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-batch-size", "0"], "--max-batch-size: Input should be greater than or equal to 1"),
        (["--workers", "2"], "workers=2 needs inference 'process'"),
        (["--models", "/nowhere"], "/nowhere: no checkpoint (*.pt) to serve"),
        (["--model", "/nowhere/m.pt"], "/nowhere/m.pt: no such checkpoint file"),
    ],
)
def test_bad_settings_are_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["serve", *argv]) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq serve: error:") and message in error
    assert error.count("\n") == 1 and "Traceback" not in error


@pytest.mark.parametrize("inference", ["thread", "process"])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong shape"])
def test_a_bad_checkpoint_is_one_line_exit_2_in_both_inference_modes(
    tiny_checkpoint_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    inference: str,
    damage: str,
) -> None:
    path = tmp_path / "model.pt"
    if damage == "wrong shape":
        checkpoint = load_checkpoint(tiny_checkpoint_path)
        checkpoint.model_state["decoder.rnn.weight_ih_l0"] = torch.zeros(256, 16)
        save_checkpoint(checkpoint, path)
    else:
        data = tiny_checkpoint_path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a model")
    argv = ["serve", "--model", str(path), "--inference", inference, "--port", "0"]
    assert cli_main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq serve: error:") and str(path) in error
    assert error.count("\n") == 1 and "Traceback" not in error
    if damage == "wrong shape":
        assert "decoder.rnn.weight_ih_l0 have shape [256, 16], its config needs [256, 32]" in error


def test_two_models_for_one_pair_name_both(
    tiny_checkpoint_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.pt"
    copy.write_bytes(tiny_checkpoint_path.read_bytes())
    assert cli_main(["serve", "--model", str(tiny_checkpoint_path), "--model", str(copy)]) == 2
    error = capsys.readouterr().err
    assert f"{tiny_checkpoint_path} and {copy} both translate de->en" in error


def test_train_if_missing_without_training_package_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "training.models", None)
    argv = ["serve", "--model", str(tmp_path / "multi30k_de_en.pt"), "--train-if-missing"]
    assert cli_main(argv) == 2
    assert "cannot train: the training package is missing" in capsys.readouterr().err


def test_train_if_missing_trains_the_preset_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_checkpoint_path: Path
) -> None:
    import training.models

    calls: list[tuple[Path, Path]] = []
    monkeypatch.setattr(
        training.models, "train_model", lambda preset, target: calls.append((preset, target))
    )
    present, missing = tiny_checkpoint_path, tmp_path / "multi30k_fr_en.pt"
    train_missing(Settings(model=[str(present), str(missing)], train_if_missing=True))
    assert calls == [(training.models.CONFIGS / "multi30k_fr_en.yaml", missing)]
    with pytest.raises(Exception, match=r"no preset .*unknown\.yaml"):
        train_missing(Settings(model=[str(tmp_path / "unknown.pt")]))
