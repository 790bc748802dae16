"""`seq2seq evaluate`: BLEU/chrF with signatures, hypotheses files, dataset splits, bad input."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import number_pairs, write_multi30k_mirror

import training.config
import training.evaluate
from seq2seq import SearchOptions, Translator
from seq2seq.cli import main
from training import mirrors


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def test_references_against_themselves_score_100(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refs = write_lines(tmp_path / "ref.en", ["A dog runs in the park.", "Two men talk."])
    assert main(["evaluate", "--hyp", str(refs), "--ref", str(refs), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bleu"] == 100.0 and result["chrf"] == 100.0
    assert "tok:13a" in result["bleu_signature"] and "case:mixed" in result["bleu_signature"]


def test_model_on_files_writes_hypotheses(
    tmp_path: Path, tiny_checkpoint_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = number_pairs(30, seed=21)
    src = write_lines(tmp_path / "test.de", [s for s, _ in pairs])
    ref = write_lines(tmp_path / "test.en", [t for _, t in pairs])
    hyp = tmp_path / "out" / "hyp.en"
    args = [
        "evaluate",
        "--model",
        str(tiny_checkpoint_path),
        "--src",
        str(src),
        "--ref",
        str(ref),
        "--beam-size",
        "2",
        "--hyp-out",
        str(hyp),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "BLEU" in out and "chrF" in out and "nrefs:1" in out
    assert len(hyp.read_text().splitlines()) == 30


def test_several_models_score_their_ensemble(
    tmp_path: Path, tiny_checkpoint_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = number_pairs(30, seed=22)
    src = write_lines(tmp_path / "test.de", [s for s, _ in pairs])
    ref = write_lines(tmp_path / "test.en", [t for _, t in pairs])
    files = ["--src", str(src), "--ref", str(ref), "--beam-size", "2", "--json"]
    assert main(["evaluate", "--model", str(tiny_checkpoint_path), *files]) == 0
    alone = json.loads(capsys.readouterr().out)
    models = ["--model", str(tiny_checkpoint_path)] * 2
    assert main(["evaluate", *models, *files]) == 0
    ensemble = json.loads(capsys.readouterr().out)
    assert ensemble["bleu"] == alone["bleu"]
    assert ensemble["models"] == [str(tiny_checkpoint_path)] * 2


def test_dataset_splits_use_the_models_languages(
    tmp_path: Path, tiny_checkpoint_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for split, seed in (("dev", 22), ("test", 23)):
        pairs = number_pairs(20, seed=seed)
        write_lines(tmp_path / f"{split}.de", [s for s, _ in pairs])
        write_lines(tmp_path / f"{split}.en", [t for _, t in pairs])
    args = [
        "evaluate",
        "--model",
        str(tiny_checkpoint_path),
        "--data",
        str(tmp_path),
        "--split",
        "dev",
        "--split",
        "test",
        "--beam-size",
        "1",
        "--json",
        "--hyp-out",
        str(tmp_path / "{split}.hyp"),
    ]
    assert main(args) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["set"] for r in results] == ["dev", "test"]
    assert all(r["bleu"] > 20 for r in results)  # the tiny model mostly knows number words
    assert (tmp_path / "test.hyp").exists()


def test_splits_without_data_come_from_the_hub_mirror_when_nothing_is_local(
    tmp_path: Path,
    tiny_checkpoint_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(training.config, "REPO", tmp_path / "clone")  # no ../shared/data
    monkeypatch.delenv("SEQ2SEQ_DATA", raising=False)
    splits = {"train": number_pairs(3, seed=25), "test": number_pairs(20, seed=26)}
    root = str(write_multi30k_mirror(tmp_path / "hub", splits))
    mirror = dataclasses.replace(mirrors.MULTI30K, name=root)  # its split names, files here
    monkeypatch.setitem(mirrors.MIRRORS, root, mirror)
    monkeypatch.setattr(training.evaluate, "MULTI30K", mirror)
    model = str(tiny_checkpoint_path)
    assert main(["evaluate", "--model", model, "--split", "test_2016_flickr", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["set"] == "test_2016_flickr" and result["sentences"] == 20
    assert result["bleu"] > 20  # the tiny model mostly knows number words
    assert f"data: {root} from the Hugging Face hub" in captured.err


@pytest.mark.parametrize(("length_penalty", "precision"), [(0.0, "fp32"), (2.0, "int8")])
def test_search_options_and_precision_reach_the_translator(
    tmp_path: Path,
    tiny_checkpoint_path: Path,
    capsys: pytest.CaptureFixture[str],
    length_penalty: float,
    precision: str,
) -> None:
    sources = [s for s, _ in number_pairs(30, seed=24, max_words=8)]
    src = write_lines(tmp_path / "test.de", sources)
    hyp = tmp_path / "hyp.en"
    args = [
        "evaluate",
        "--model",
        str(tiny_checkpoint_path),
        "--src",
        str(src),
        "--ref",
        str(src),
        "--beam-size",
        "4",
        "--length-penalty",
        str(length_penalty),
        "--max-length",
        "6",
        "--precision",
        precision,
        "--json",
        "--hyp-out",
        str(hyp),
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["length_penalty"], result["precision"]) == (length_penalty, precision)
    assert result["max_length"] == 6
    translator = Translator.load(tiny_checkpoint_path, device="cpu", precision=precision)
    expected = translator.translate(
        sources, SearchOptions(beam_size=4, length_penalty=length_penalty, max_length=6)
    )
    assert hyp.read_text(encoding="utf-8").splitlines() == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --model"),
        (["--model", "m.pt", "--data", "."], "needs at least one --split"),
        (["--hyp", "h.txt"], "--ref is required"),
        (["--hyp", "h.txt", "--split", "val"], "not --model, --data or --split"),
        (["--hyp", "missing.txt", "--ref", "missing.txt"], "missing.txt"),
        (
            ["--model", "m.pt", "--src", "s", "--ref", "r", "--length-penalty", "-1"],
            "--length-penalty must be 0 or more",
        ),
        (
            ["--model", "m.pt", "--src", "s", "--ref", "r", "--max-length", "0"],
            "--max-length must be at least 1",
        ),
    ],
)
def test_bad_input_is_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", *args]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("seq2seq evaluate: error:") and message in error
    assert "\n" not in error


def test_misaligned_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hyp = write_lines(tmp_path / "hyp", ["a", "b"])
    ref = write_lines(tmp_path / "ref", ["a"])
    assert main(["evaluate", "--hyp", str(hyp), "--ref", str(ref)]) == 2
    assert "has 2 lines but" in capsys.readouterr().err
