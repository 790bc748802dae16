"""`seq2seq ensemble`: one file of several models that translate, evaluate and serve as one."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from seq2seq import SearchOptions, Translator, load_checkpoint
from seq2seq.cli import main
from seq2seq.ensemble import EnsembleConfig
from serve.app import create_app
from serve.settings import Settings

TEXTS = ["eins zwei drei", "vier fünf"]


@pytest.fixture(scope="module")
def ensemble_path(tiny_checkpoint_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ensemble") / "de_en_ensemble.pt"
    models = [str(tiny_checkpoint_path)] * 2
    assert main(["ensemble", *models, "-o", str(path)]) == 0
    return path


def test_the_file_holds_every_model_and_translates_as_one(
    ensemble_path: Path, tiny_checkpoint_path: Path
) -> None:
    checkpoint = load_checkpoint(ensemble_path)
    assert isinstance(checkpoint.config, EnsembleConfig) and len(checkpoint.config.members) == 2
    assert (checkpoint.src_lang, checkpoint.tgt_lang) == ("de", "en")
    options = SearchOptions(beam_size=3)
    alone = Translator.load(tiny_checkpoint_path, device="cpu").translate(TEXTS, options)
    assert Translator.load(ensemble_path, device="cpu").translate(TEXTS, options) == alone


@pytest.fixture(params=["thread", "process"])
def client(ensemble_path: Path, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    settings = Settings(
        model=[str(ensemble_path)], device="cpu", max_wait_ms=2, inference=request.param
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_server_serves_an_ensemble_file_as_one_model(
    client: TestClient, tiny_checkpoint_path: Path
) -> None:
    response = client.post("/translate", json={"texts": TEXTS, "beam_size": 2})
    assert response.status_code == 200, response.text
    expected = Translator.load(tiny_checkpoint_path, device="cpu").translate(
        TEXTS, SearchOptions(beam_size=2)
    )
    assert response.json()["translations"] == expected
    files = [member["file"] for member in client.get("/model").json()["metadata"]["ensemble"]]
    assert files == [str(tiny_checkpoint_path)] * 2


def test_one_model_or_a_bad_file_is_one_line_exit_2(
    tiny_checkpoint_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "e.pt")
    assert main(["ensemble", str(tiny_checkpoint_path), "-o", out]) == 2
    assert "two checkpoints or more" in capsys.readouterr().err
    assert main(["ensemble", str(tiny_checkpoint_path), str(tmp_path / "no.pt"), "-o", out]) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq ensemble: error:") and error.count("\n") == 1
    assert not Path(out).exists()
