"""`train.precision: auto`: bf16 only where the probe finds it faster, kept across a resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY, tiny_overrides

import training.precision
from seq2seq import ModelConfig, load_checkpoint
from training.config import LoopConfig, load_config
from training.precision import probe_batch, resolve_precision
from training.train import train

CPU = torch.device("cpu")
NETWORK = ModelConfig(src_vocab_size=40, tgt_vocab_size=30, embedding_size=8, hidden_size=8)


def probe_says(monkeypatch: pytest.MonkeyPatch, fp32: float, bf16: float) -> list[int]:
    """Make bf16 look possible and the probe report these step times; returns a call counter."""
    calls: list[int] = []

    def probe(*_: object) -> tuple[float, float]:
        calls.append(1)
        return fp32, bf16

    monkeypatch.setattr(training.precision, "bf16_runs_on", lambda _: True)
    monkeypatch.setattr(training.precision, "probe_step_seconds", probe)
    return calls


@pytest.mark.parametrize(
    ("fp32", "bf16", "chosen"), [(1.0, 0.6, "bf16"), (1.0, 0.95, "fp32"), (1.0, 1.4, "fp32")]
)
def test_auto_takes_bf16_only_when_clearly_faster(
    monkeypatch: pytest.MonkeyPatch, fp32: float, bf16: float, chosen: str
) -> None:
    probe_says(monkeypatch, fp32, bf16)
    precision, why = resolve_precision(LoopConfig(precision="auto"), NETWORK, CPU)
    assert precision == chosen and f"{fp32 / bf16:.2f}x" in why


def test_a_set_precision_or_a_resumed_choice_is_never_probed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = probe_says(monkeypatch, 1.0, 0.5)
    assert resolve_precision(LoopConfig(precision="fp32"), NETWORK, CPU)[0] == "fp32"
    auto = LoopConfig(precision="auto")
    assert resolve_precision(auto, NETWORK, CPU, resumed="fp32")[0] == "fp32"
    assert not calls


def test_auto_without_bf16_arithmetic_is_fp32_without_a_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = probe_says(monkeypatch, 1.0, 0.5)
    monkeypatch.setattr(training.precision, "bf16_runs_on", lambda _: False)
    precision, why = resolve_precision(LoopConfig(precision="auto"), NETWORK, CPU)
    assert (precision, calls) == ("fp32", []) and "no bfloat16" in why


def test_a_bf16_run_resumed_where_bf16_cannot_run_goes_on_in_fp32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(training.precision, "bf16_runs_on", lambda _: False)
    auto = LoopConfig(precision="auto")
    assert resolve_precision(auto, NETWORK, CPU, resumed="bf16")[0] == "fp32"
    monkeypatch.setattr(training.precision, "bf16_runs_on", lambda _: True)
    assert resolve_precision(auto, NETWORK, CPU, resumed="bf16")[0] == "bf16"


def test_a_bf16_failure_in_the_probe_means_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> tuple[float, float]:
        raise RuntimeError("could not create a primitive\nmore detail")

    monkeypatch.setattr(training.precision, "bf16_runs_on", lambda _: True)
    monkeypatch.setattr(training.precision, "probe_step_seconds", broken)
    precision, why = resolve_precision(LoopConfig(precision="auto"), NETWORK, CPU)
    assert precision == "fp32" and "could not create a primitive" in why and "\n" not in why


def test_the_probe_batch_is_a_batch_of_the_configured_size() -> None:
    batch = probe_batch(NETWORK, LoopConfig(batch_tokens=170, max_sentences=256))
    assert batch.src.shape == (10, 16) and batch.tgt_in.shape == (10, 17)
    assert int(batch.src.max()) < 40 and int(batch.tgt_out.max()) < 30
    assert probe_batch(NETWORK, LoopConfig(batch_tokens=4000, max_sentences=7)).src.shape[0] == 7


def test_the_probe_leaves_the_seeded_run_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A probed run that ends in fp32 trains exactly the weights of a plain fp32 run."""
    monkeypatch.setattr(training.precision, "bf16_runs_on", lambda _: True)  # the probe runs
    monkeypatch.setattr(training.precision, "MARGIN", float("inf"))  # and picks fp32
    plain = train(load_config(TINY, tiny_overrides(tmp_path, "plain", train__max_steps=4)))
    auto = tiny_overrides(tmp_path, "auto", train__max_steps=4, train__precision="auto")
    probed = train(load_config(TINY, auto))
    first, second = load_checkpoint(plain.best), load_checkpoint(probed.best)
    assert second.metadata["train_config"]["train"]["precision"] == "fp32"
    for name, tensor in first.model_state.items():
        assert torch.equal(tensor, second.model_state[name]), name


def test_a_resumed_auto_run_keeps_its_first_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    probe_says(monkeypatch, 1.0, 2.0)  # bf16 slower: fp32
    overrides = tiny_overrides(tmp_path, "run", train__max_steps=4, train__precision="auto")
    train(load_config(TINY, overrides))
    assert "precision: fp32 (probe: an fp32 step took 0.50x" in capsys.readouterr().err
    probe_says(monkeypatch, 2.0, 1.0)  # now bf16 would look faster
    train(load_config(TINY, [*overrides, "--train.max_steps=6"]), resume=True)
    assert "precision: fp32 (chosen when the run started)" in capsys.readouterr().err
    last = load_checkpoint(tmp_path / "run" / "last.pt", weights=False)
    assert last.metadata["train_config"]["train"]["precision"] == "fp32"
    assert last.metadata["step"] == 6
