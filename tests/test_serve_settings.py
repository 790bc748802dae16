"""Server settings: environment variables, command-line overrides, the cached getter."""

from __future__ import annotations

import argparse
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from seq2seq.cli import main as cli_main
from serve.app import add_arguments, settings_from_args
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


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port, settings.device, settings.precision) == (
        "127.0.0.1",
        8000,
        "auto",
        "fp32",
    )
    assert settings.beam_size == 1 and settings.api_key is None and settings.cors_origins == []


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQ2SEQ_MODEL", "/models/x.pt")
    monkeypatch.setenv("SEQ2SEQ_PORT", "9001")
    monkeypatch.setenv("SEQ2SEQ_PRECISION", "int8")
    monkeypatch.setenv("SEQ2SEQ_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("SEQ2SEQ_API_KEY", "sesame")
    monkeypatch.setenv("SEQ2SEQ_CORS_ORIGINS", '["http://a.example"]')
    settings = get_settings()
    assert (settings.model, settings.port, settings.precision) == ("/models/x.pt", 9001, "int8")
    assert settings.max_batch_size == 16 and settings.cors_origins == ["http://a.example"]
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sesame"
    assert "sesame" not in repr(settings)


def test_empty_api_key_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQ2SEQ_API_KEY", "")  # what compose passes for an unset variable
    assert Settings().api_key is None


def test_getter_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("SEQ2SEQ_PORT", "9002")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().port == 9002


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("SEQ2SEQ_PORT", "eighty", "valid integer"),
        ("SEQ2SEQ_DEVICE", "tpu", "'auto', 'cpu'"),
        ("SEQ2SEQ_BEAM_SIZE", "20", "less than or equal to 8"),
        ("SEQ2SEQ_BATCHING", "dynamic", "'static' or 'continuous'"),
        ("SEQ2SEQ_INFERENCE", "gpu", "'thread' or 'process'"),
    ],
)
def test_bad_environment_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=reason):
        Settings()


def test_command_line_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQ2SEQ_PORT", "9003")
    monkeypatch.setenv("SEQ2SEQ_HOST", "0.0.0.0")
    monkeypatch.setenv("SEQ2SEQ_BATCHING", "static")
    monkeypatch.setenv("SEQ2SEQ_INFERENCE", "thread")
    settings = settings_from_args(
        parse(
            "--model",
            "m.pt",
            "--port",
            "9100",
            "--beam-size",
            "4",
            "--batching",
            "continuous",
            "--inference",
            "process",
        )
    )
    assert (settings.model, settings.port, settings.beam_size) == ("m.pt", 9100, 4)
    assert (settings.batching, settings.inference) == ("continuous", "process")
    assert settings.host == "0.0.0.0"  # not given on the command line: the environment's


def test_cli_bad_setting_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["serve", "--model", str(tmp_path / "m.pt"), "--max-batch-size", "0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq serve: error:") and "max_batch_size" in error
    assert error.count("\n") == 1


def test_train_if_missing_without_training_package_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "training.train", None)
    argv = ["serve", "--model", str(tmp_path / "m.pt"), "--train-if-missing"]
    assert cli_main(argv) == 2
    assert "cannot train" in capsys.readouterr().err


def test_train_if_missing_trains_then_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_checkpoint_path: Path
) -> None:

    calls: list[str] = []
    fake = types.ModuleType("training.train")
    fake.__file__ = str(tmp_path / "training" / "train.py")

    def train_from_config(config_path: str) -> Path:
        calls.append(config_path)
        return tiny_checkpoint_path

    fake.train_from_config = train_from_config  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "training.train", fake)
    from serve.app import train_default_model

    target = tmp_path / "models" / "m.pt"
    train_default_model(target, None)
    assert calls == [str(tmp_path / "training" / "configs" / "multi30k_de_en.yaml")]
    assert target.read_bytes() == tiny_checkpoint_path.read_bytes()


def test_sentence_splitting_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings_from_args(parse("--model", "m.pt")).split_sentences
    assert not settings_from_args(parse("--model", "m.pt", "--no-split")).split_sentences
    monkeypatch.setenv("SEQ2SEQ_SPLIT_SENTENCES", "false")
    assert not settings_from_args(parse("--model", "m.pt")).split_sentences
