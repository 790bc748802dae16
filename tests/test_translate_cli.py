"""`seq2seq translate` and the dispatcher: streaming lines, files, one-line errors, exit codes."""

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import seq2seq.translator
from seq2seq import SearchOptions, Translator
from seq2seq.cli import main
from seq2seq.search import Hypothesis, beam_search

LINES = ["eins zwei", "", "drei vier fünf"]


def translate_lines(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> int:
    """`seq2seq translate ARGS` with LINES on stdin; its exit status."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(LINES) + "\n"))
    return main(["translate", *args])


def test_stdin_to_stdout(
    tiny_checkpoint_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        translate_lines(monkeypatch, ["--model", str(tiny_checkpoint_path), "--beam-size", "2"])
        == 0
    )
    expected = Translator.load(tiny_checkpoint_path, device="cpu").translate(
        LINES, SearchOptions(beam_size=2)
    )
    assert capsys.readouterr().out.splitlines() == expected


def test_beam_finish_option_reaches_the_search(
    tiny_checkpoint_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    finishes: list[str] = []

    def recording(*args: Any, **kwargs: Any) -> list[list[Hypothesis]]:
        finishes.append(kwargs["finish"])
        return beam_search(*args, **kwargs)

    monkeypatch.setattr(seq2seq.translator, "beam_search", recording)
    args = ["--model", str(tiny_checkpoint_path), "--beam-size", "3"]
    assert translate_lines(monkeypatch, [*args, "--beam-finish", "best"]) == 0
    assert finishes and set(finishes) == {"best"}
    expected = Translator.load(tiny_checkpoint_path, device="cpu").translate(
        LINES, SearchOptions(beam_size=3, finish="best")
    )
    assert capsys.readouterr().out.splitlines() == expected
    with pytest.raises(SystemExit) as exit_info:  # argparse names the choices
        main(["translate", *args, "--beam-finish", "first"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'first'" in capsys.readouterr().err


def test_several_models_translate_as_their_ensemble(
    tiny_checkpoint_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", str(tiny_checkpoint_path)]
    assert translate_lines(monkeypatch, [*model, *model, "--beam-size", "3"]) == 0
    alone = Translator.load(tiny_checkpoint_path, device="cpu")
    expected = alone.translate(LINES, SearchOptions(beam_size=3))
    assert capsys.readouterr().out.splitlines() == expected


def test_models_with_other_tokenizers_are_one_line_exit_2(
    tiny_checkpoint_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = models_dir / "en_de.pt"
    assert main(["translate", "--model", str(tiny_checkpoint_path), "--model", str(other)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq translate: error:") and error.count("\n") == 1
    assert f"{other} has another source tokenizer than {tiny_checkpoint_path}" in error


def test_n_best_lists_rank_the_beams_translations_of_each_line(
    tiny_checkpoint_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", str(tiny_checkpoint_path), "--beam-size", "4", "--batch-size", "2"]
    assert translate_lines(monkeypatch, [*model, "--n-best", "3"]) == 0
    entries = [line.split(" ||| ") for line in capsys.readouterr().out.splitlines()]
    assert [number for number, _, _ in entries] == ["0"] * 3 + ["1"] + ["2"] * 3
    assert entries[3] == ["1", "", "0.0000"]  # an empty line still gets its entry
    translator = Translator.load(tiny_checkpoint_path, device="cpu")
    best = translator.translate(LINES, SearchOptions(beam_size=4), split_sentences=False)
    for number in (0, 2):
        ranked = [entry for entry in entries if entry[0] == str(number)]
        assert ranked[0][1] == best[number]
        scores = [float(score) for _, _, score in ranked]
        assert scores == sorted(scores, reverse=True) and scores[0] < 0.0


def test_int8_precision(
    tiny_checkpoint_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--model", str(tiny_checkpoint_path), "--precision", "int8"]
    assert translate_lines(monkeypatch, args) == 0
    int8 = Translator.load(tiny_checkpoint_path, device="cpu", precision="int8")
    assert capsys.readouterr().out.splitlines() == int8.translate(LINES, SearchOptions(beam_size=5))


@pytest.mark.parametrize("split", [True, False])
def test_sentences_of_a_line_are_translated_one_by_one_unless_no_split(
    tiny_checkpoint_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    split: bool,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("eins zwei. Drei vier.\n"))
    args = ["translate", "--model", str(tiny_checkpoint_path), "--beam-size", "1"]
    assert main(args if split else [*args, "--no-split"]) == 0
    translator = Translator.load(tiny_checkpoint_path, device="cpu")
    if split:
        greedy = SearchOptions(beam_size=1)
        expected = " ".join(translator.translate(["eins zwei.", "Drei vier."], greedy))
    else:
        expected = translator.translate(["eins zwei. Drei vier."], split_sentences=False)[0]
    assert capsys.readouterr().out == expected + "\n"


def test_files_in_and_out(tiny_checkpoint_path: Path, tmp_path: Path) -> None:
    (tmp_path / "src.txt").write_text("\n".join(LINES * 50) + "\n", encoding="utf-8")
    args = ["translate", "--model", str(tiny_checkpoint_path), "--batch-size", "4"]
    args += ["--input", str(tmp_path / "src.txt"), "--output", str(tmp_path / "hyp.txt")]
    assert main(args) == 0
    output = (tmp_path / "hyp.txt").read_text(encoding="utf-8").splitlines()
    assert len(output) == 150 and output[1] == "" and output[0] == output[3]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "missing.pt"], "missing.pt: no such checkpoint file"),
        (["--model", "{model}", "--beam-size", "0"], "--beam-size must be at least 1, got 0"),
        (["--model", "{model}", "--max-length", "0"], "--max-length must be at least 1"),
        (["--model", "{model}", "--input", "absent.txt"], "No such file or directory"),
        (["--model", "{model}", "--length-penalty", "-0.5"], "--length-penalty must be 0 or more"),
        (["--model", "{model}", "--n-best", "6"], "--n-best must be between 0 and --beam-size (5)"),
    ],
)
def test_errors_are_one_line_with_status_2(
    tiny_checkpoint_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    args = [arg.format(model=tiny_checkpoint_path) for arg in args]
    assert main(["translate", *args]) == 2
    error = capsys.readouterr().err
    assert error.startswith("seq2seq translate: error:") and message in error
    assert error.count("\n") == 1


def test_unknown_command_and_missing_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as unknown:
        main(["transmogrify"])
    assert unknown.value.code == 2
    with pytest.raises(SystemExit) as missing:
        main(["translate"])
    assert missing.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_console_script_exit_status(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq.cli", "translate", "--model", str(tmp_path / "x.pt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "no such checkpoint file" in result.stderr
