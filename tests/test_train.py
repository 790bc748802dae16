"""Training: exact resume, interrupt safety, signals, the CLI, and a short run on Multi30k."""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

from seq2seq import Translator, load_checkpoint
from seq2seq.cli import main
from seq2seq.precision import cpu_bf16_autocast_works
from tests.conftest import number_pairs
from training.config import REPO, default_data_dir, load_config
from training.loop import Trainer
from training.train import train, train_from_config

TINY = REPO / "tests" / "data" / "tiny_train.yaml"


def write_corpus(directory: Path, count: int = 400) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, size, seed in (("train", count, 10), ("val", 20, 11)):
        pairs = number_pairs(size, seed=seed)
        for lang, lines in (("de", [s for s, _ in pairs]), ("en", [t for _, t in pairs])):
            (directory / f"{split}.{lang}").write_text("".join(f"{x}\n" for x in lines))
    return directory


def tiny_overrides(tmp_path: Path, run: str, **extra: object) -> list[str]:
    data = tmp_path / "data"
    if not data.exists():
        write_corpus(data)
    settings = {"run_dir": tmp_path / run, "data.path": data, **extra}
    return [f"--{key.replace('__', '.')}={value}" for key, value in settings.items()]


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


def test_sigterm_saves_last_and_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Trainer.train_step

    def step_then_signal(self: Trainer, batch: object) -> float:
        loss = original(self, batch)  # type: ignore[arg-type]
        if self.progress.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return loss

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
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
    (output,) = translator.translate(["Ein Mann."], beam_size=2)
    assert isinstance(output, str) and output
    records = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    losses = [record for record in records if "train_loss" in record]
    assert len(losses) >= 2


def test_streaming_training(tmp_path: Path) -> None:
    overrides = tiny_overrides(tmp_path, "run", train__max_steps=5, data__streaming="true")
    outcome = train(load_config(TINY, overrides))
    assert outcome.reason == "max_steps"
    assert load_checkpoint(tmp_path / "run/last.pt").training_state["batches"]["position"] == 5


def test_schedules_warm_up_decay_and_cut_on_plateau() -> None:
    from training.config import OptimConfig
    from training.schedule import Schedule

    inverse = Schedule(OptimConfig(lr=1.0, warmup_steps=4, schedule="inverse_sqrt"), max_steps=0)
    assert [inverse.rate(step) for step in (1, 4, 16)] == [0.25, 1.0, 0.5]
    cosine = Schedule(
        OptimConfig(lr=1.0, warmup_steps=0, schedule="cosine", min_lr=0.1), max_steps=10
    )
    assert cosine.rate(10) == pytest.approx(0.1)
    plateau = Schedule(
        OptimConfig(
            lr=1.0, warmup_steps=0, schedule="plateau", plateau_patience=1, plateau_factor=0.5
        ),
        max_steps=0,
    )
    for bleu in (10.0, 12.0, 11.0):
        plateau.observe(bleu)
    assert plateau.rate(5) == 0.5
    restored = Schedule(plateau.config, max_steps=0)
    restored.load_state_dict(plateau.state_dict())
    assert restored.rate(5) == 0.5


def test_linear_decay_follows_the_wall_clock_budget_when_there_is_no_step_limit() -> None:
    from training.config import OptimConfig
    from training.loop import Progress, budget_used, share_of_budget
    from training.schedule import Schedule

    linear = OptimConfig(lr=1.0, warmup_steps=2, schedule="linear", min_lr=0.01)
    with pytest.raises(ValueError, match=r"needs train\.max_steps, train\.max_minutes or"):
        Schedule(linear, max_steps=0)
    timed = Schedule(linear, max_steps=0, timed=True)
    assert timed.rate(1, budget_used=0.9) == 0.5  # warmup goes by steps
    assert [timed.rate(50, used) for used in (0.0, 0.25, 1.0)] == [1.0, 0.75, 0.01]
    both = Schedule(linear, max_steps=12, timed=True)
    assert both.rate(7, budget_used=0.25) == 0.5  # the step limit is nearer: 5 of 10 steps
    assert budget_used(Progress(elapsed=30.0), time.monotonic(), max_minutes=1.0) == (
        pytest.approx(0.5, abs=0.01)
    )
    assert budget_used(Progress(elapsed=90.0), time.monotonic(), max_minutes=1.0) == 1.0
    assert budget_used(Progress(elapsed=90.0), time.monotonic(), max_minutes=0.0) == 0.0
    assert share_of_budget(45.0, max_minutes=1.0) == 0.75  # a resumed run's first step


def test_linear_decay_by_epochs_ends_after_the_last_epochs_batches() -> None:
    from training.loop import decay_steps

    by_epochs = load_config(TINY, ["--train.max_steps=0", "--train.max_epochs=3"])
    assert decay_steps(by_epochs, [None] * 7) == 21
    assert decay_steps(by_epochs, iter([])) == 0  # streamed batches: their number is unknown
    by_steps = load_config(TINY, ["--train.max_steps=50", "--train.max_epochs=3"])
    assert decay_steps(by_steps, [None] * 7) == 50
