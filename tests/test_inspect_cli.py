"""`seq2seq inspect`: the summary, reports written, the pool, and one-line errors (exit 2)."""

from pathlib import Path

import pytest

from seq2seq import SearchOptions, Translator
from seq2seq.cli import main
from seq2seq.inspect_cli import sparkline

TEXT = "eins zwei drei vier"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["inspect", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_summary_shows_the_translation_steps_and_top_units(
    tiny_checkpoint_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, TEXT, "--model", str(tiny_checkpoint_path), "--top", "4")
    assert code == 0
    translation = Translator.load(tiny_checkpoint_path, device="cpu").translate(
        [TEXT], SearchOptions(beam_size=1)
    )
    assert f"translation (beam size 1): {translation[0]}" in out
    assert "read reversed" in out and "-> </s>" in out
    table = out.split("tracks 'position'")[1].splitlines()[2:]
    assert len(table) == 4
    r_values = [abs(float(row.split()[4])) for row in table]
    assert r_values == sorted(r_values, reverse=True)


def test_reports_are_written(
    tiny_checkpoint_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", str(tiny_checkpoint_path)]
    for name in ("page.html", "heatmap.png"):
        code, out, _ = run(capsys, TEXT, *model, "--out", str(tmp_path / name), "--by", "remaining")
        assert code == 0 and out.rstrip().endswith(f"wrote {tmp_path / name}")
    assert (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pool_ranks_over_several_sentences(
    tiny_checkpoint_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = tmp_path / "pool.txt"
    pool.write_text("eins\n\nzwei drei\nvier fünf sechs sieben acht\n")
    args = [TEXT, "--model", str(tiny_checkpoint_path), "--pool", str(pool), "--beam-size", "2"]
    code, out, _ = run(capsys, *args, "--by", "remaining", "--signal", "hidden")
    assert code == 0
    assert "units whose hidden tracks 'remaining' (Pearson r over the steps of 4 sentences)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["", "--model", "MODEL"], "the text is empty"),
        (["eins " * 70, "--model", "MODEL"], "inspect reads at most 64"),
        ([TEXT, "--model", "MODEL", "--by", "length"], "unknown property 'length'; valid:"),
        ([TEXT, "--model", "missing.pt"], "missing.pt"),
        ([TEXT, "--model", "MODEL", "--out", "x.pdf"], "--out must end in .html or .png"),
        ([TEXT, "--model", "MODEL", "--top", "0"], "--top must be at least 1"),
        ([TEXT, "--model", "MODEL", "--threads", "0"], "--threads must be at least 1"),
        ([TEXT, "--model", "MODEL", "--pool", "no-such-file"], "no-such-file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tiny_checkpoint_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    args = [str(tiny_checkpoint_path) if arg == "MODEL" else arg for arg in args]
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("seq2seq inspect: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_sparkline_spans_minimum_to_maximum() -> None:
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert sparkline([2.0, 2.0]) == "▁▁"
