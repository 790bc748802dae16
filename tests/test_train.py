"""Training: exact resume, interrupt safety, signals, the CLI, and a short run on Multi30k."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import TINY, tiny_overrides

import training.loop
import training.trainer
from seq2seq import SearchOptions, Translator, load_checkpoint
from seq2seq.cli import main
from seq2seq.precision import cpu_bf16_autocast_works
from training.config import default_data_dir, load_config
from training.train import train, train_from_config
from training.trainer import Trainer


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model_state


def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight = load_config(TINY, tiny_overrides(tmp_path, "straight", train__max_steps=12))
    train(straight)
    halves = tiny_overrides(tmp_path, "halves", train__max_steps=6)
    (tmp_path / "halves").mkdir()
    for model in (tmp_path / "straight").glob("spm.*.model"):
        shutil.copy(model, tmp_path / "halves")
    train(load_config(TINY, halves))
    train(load_config(TINY, [*halves, "--train.max_steps=12"]), resume=True)
    first, second = weights(tmp_path / "straight/last.pt"), weights(tmp_path / "halves/last.pt")
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    state = load_checkpoint(tmp_path / "halves/last.pt").training_state
    assert state["progress"]["step"] == 12


class FakeClock:
    """`time.monotonic` for the training loop: every optimizer step takes one second."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class Killed(Exception):
    """The process dies here, like kill -9: only the checkpoints already written remain."""


TRAIN_STEP = training.loop.train_step


def one_second_steps(monkeypatch: pytest.MonkeyPatch, *, killed_at: int | None) -> None:
    """Steps of one fake second each; step `killed_at` never finishes (no final save)."""
    clock = FakeClock()
    monkeypatch.setattr(training.loop, "time", clock)
    monkeypatch.setattr(training.trainer, "time", clock)

    def timed_step(trainer: Trainer, batch: object) -> float:
        if trainer.progress.step + 1 == killed_at:
            raise Killed
        clock.now += 1.0
        return TRAIN_STEP(trainer, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(training.loop, "train_step", timed_step)


def test_resumed_run_keeps_the_time_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 12-second budget, killed in step 6 (last.pt of step 4), resumed: 8 seconds remain."""
    overrides = tiny_overrides(
        tmp_path, "run", train__max_steps=0, train__max_minutes=0.2, train__eval_every=3
    )
    one_second_steps(monkeypatch, killed_at=6)
    with pytest.raises(Killed):
        train(load_config(TINY, overrides))
    last = load_checkpoint(tmp_path / "run/last.pt")
    assert last.training_state["progress"]["step"] == 4
    assert last.training_state["progress"]["elapsed"] == pytest.approx(4.0)
    assert load_checkpoint(tmp_path / "run/best.pt").metadata["elapsed_s"] == pytest.approx(3.0)
    one_second_steps(monkeypatch, killed_at=None)
    assert train(load_config(TINY, overrides), resume=True).reason == "max_minutes"
    progress = load_checkpoint(tmp_path / "run/last.pt").training_state["progress"]
    assert progress["step"] == 12 and progress["elapsed"] == pytest.approx(12.0)


def test_failed_checkpoint_write_keeps_the_last_good_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    best = train_from_config(str(TINY), tiny_overrides(tmp_path, "run", train__max_steps=4))
    last = best.with_name("last.pt")
    before = weights(last)
    original = torch.save

    def crash(obj: object, file: object, *args: object, **kwargs: object) -> None:
        original({"partial": torch.zeros(3)}, file)  # some bytes reach the temporary file
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        train(load_config(TINY, tiny_overrides(tmp_path, "run", train__max_steps=8)), resume=True)
    monkeypatch.undo()
    assert sorted(p.name for p in last.parent.glob(".*")) == []
    after = load_checkpoint(last)
    assert after.training_state["progress"]["step"] == 4
    assert all(torch.equal(before[name], after.model_state[name]) for name in before)


def test_a_run_removes_temporary_files_of_interrupted_saves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    stale = [
        Path(tempfile.mkstemp(prefix=f".{name}.", dir=run)[1])  # as save_checkpoint names them
        for name in ("last.pt", "best.pt", "step-40.pt")
    ]
    others = [
        run / ".last.pt",
        run / ".notes",
        run / "last.pt.backup",
        tmp_path / ".last.pt.x1y2z3w4",
    ]
    for path in others:
        path.write_text("not ours")
    overrides = tiny_overrides(tmp_path, "run", train__max_steps=2)
    train(load_config(TINY, overrides))
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in others)
    line = next(x for x in capsys.readouterr().err.splitlines() if "interrupted save" in x)
    assert str(run) in line and all(path.name in line for path in stale)


def test_sigterm_saves_last_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = training.loop.train_step

    def step_then_signal(trainer: Trainer, batch: object) -> float:
        loss = original(trainer, batch)  # type: ignore[arg-type]
        if trainer.progress.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    monkeypatch.setattr(training.loop, "train_step", step_then_signal)
    outcome = train(load_config(TINY, tiny_overrides(tmp_path, "run", train__max_steps=50)))
    assert outcome.reason == "signal" and outcome.exit_code == 128 + signal.SIGTERM
    assert load_checkpoint(tmp_path / "run/last.pt").training_state["progress"]["step"] == 3


def test_cli_rejects_bad_config_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(TINY), "--model.hidden=3"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("seq2seq train: error: unknown config key model.hidden")
    assert "\n" not in error
    assert main(["train", str(TINY), f"--run_dir={tmp_path / 'none'}", "--resume"]) == 2
    assert "no such checkpoint file" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cpu_reduced_precision_trains_or_says_why_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], precision: str
) -> None:
    """fp16 needs CUDA; bf16 on a CPU needs bfloat16 instructions: one line, exit 2, if not."""
    overrides = tiny_overrides(
        tmp_path, precision, train__max_steps=2, train__device="cpu", train__precision=precision
    )
    code = main(["train", str(TINY), *overrides])
    if precision == "bf16" and cpu_bf16_autocast_works():
        assert code == 0 and (tmp_path / precision / "last.pt").exists()
        return
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert f"train.precision {precision} needs" in error and "\n" not in error


def test_run_dir_layout_and_metrics(tmp_path: Path) -> None:
    overrides = tiny_overrides(tmp_path, "run", train__max_steps=6, train__eval_every=3)
    assert main(["train", str(TINY), *overrides]) == 0
    run = tmp_path / "run"
    names = {path.name for path in run.iterdir()}
    assert {"best.pt", "last.pt", "metrics.jsonl", "curves.png", "spm.de.model"} <= names
    assert load_checkpoint(run / "best.pt").training_state == {}
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert sum('"val_bleu"' in line for line in lines) == 2
    windows = [json.loads(line) for line in lines if '"train_loss"' in line]
    assert windows and all(w["sentences_per_s"] > 0 and w["load_avg"] >= 0 for w in windows)
    end = json.loads(lines[-1])  # the run's totals: what it trained on, for rates over a run
    assert (
        end["stopped"] == "max_steps" and end["sentences"] > 0 and end["tokens"] > end["sentences"]
    )
    resumed = load_checkpoint(run / "last.pt").training_state["progress"]
    assert resumed["sentences"] == end["sentences"]


MULTI30K = default_data_dir()


@pytest.mark.slow
@pytest.mark.skipif(
    not (MULTI30K / "train.de.gz").exists(),
    reason=f"Multi30k not found at {MULTI30K} (set SEQ2SEQ_DATA)",
)
def test_end_to_end_on_multi30k_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    subset = tmp_path / "multi30k"
    subset.mkdir()
    for split, count in (("train", 3000), ("val", 100)):
        for lang in ("de", "en"):
            with gzip.open(MULTI30K / f"{split}.{lang}.gz", "rt") as source:
                lines = [next(source) for _ in range(count)]
            (subset / f"{split}.{lang}").write_text("".join(lines))
    overrides = [
        f"--run_dir={tmp_path / 'run'}",
        f"--data.path={subset}",
        "--tokenizer.vocab_size=1000",
        "--train.max_steps=300",
        "--train.eval_every=300",
    ]
    best = train_from_config(str(TINY), overrides)
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(best),
                "--data",
                str(subset),
                "--split",
                "val",
                "--beam-size",
                "2",
                "--json",
            ]
        )
        == 0
    )
    assert '"bleu"' in capsys.readouterr().out
    translator = Translator.load(best, device="cpu")
    (output,) = translator.translate(["Ein Mann."], SearchOptions(beam_size=2))
    assert isinstance(output, str) and output
    records = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    losses = [record for record in records if "train_loss" in record]
    assert len(losses) >= 2


def test_the_target_vocabulary_sets_the_output_layer(tmp_path: Path) -> None:
    sizes = {"tokenizer__src_vocab_size": 30, "tokenizer__tgt_vocab_size": 20}
    overrides = tiny_overrides(tmp_path, "run", train__max_steps=2, **sizes)
    checkpoint = load_checkpoint(train(load_config(TINY, overrides)).best)
    assert (checkpoint.config.src_vocab_size, checkpoint.config.tgt_vocab_size) == (30, 20)
    assert checkpoint.model_state["decoder.output.weight"].shape == (20, 32)
    assert checkpoint.shortlist is not None  # learnt from the training data, on by default
    assert checkpoint.shortlist.best.shape == (30, 10) and checkpoint.shortlist.tgt_vocab_size == 20


def test_a_run_writes_its_shortlist_into_every_checkpoint_unless_told_not_to(
    tmp_path: Path,
) -> None:
    best = train(load_config(TINY, tiny_overrides(tmp_path, "on", train__max_steps=2))).best
    last = load_checkpoint(tmp_path / "on/last.pt")
    assert last.shortlist is not None
    assert torch.equal(last.shortlist.best, load_checkpoint(best).shortlist.best)  # type: ignore[union-attr]
    translator = Translator.load(best, device="cpu", shortlist=True)
    assert len(translator.translate(["eins zwei"], SearchOptions(beam_size=2))) == 1
    off = tiny_overrides(tmp_path, "off", train__max_steps=2, train__shortlist="false")
    assert load_checkpoint(train(load_config(TINY, off)).best).shortlist is None


def test_streaming_training(tmp_path: Path) -> None:
    overrides = tiny_overrides(tmp_path, "run", train__max_steps=5, data__streaming="true")
    outcome = train(load_config(TINY, overrides))
    assert outcome.reason == "max_steps"
    assert load_checkpoint(tmp_path / "run/last.pt").training_state["batches"]["position"] == 5
    assert load_checkpoint(tmp_path / "run/last.pt").shortlist is None  # none from a stream
