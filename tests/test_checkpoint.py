"""Checkpoints: identical translations after reload, one-line errors, no pickled code, atomic."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from conftest import number_pairs

from seq2seq import (
    Checkpoint,
    CheckpointError,
    ModelConfig,
    SearchOptions,
    Translator,
    load_checkpoint,
    save_checkpoint,
)
from seq2seq.checkpoint import FORMAT, parameter_count, remove_stale_temporaries

TEXTS = [s for s, _ in number_pairs(20, seed=7)]
BEFORE_GRU = Path(__file__).parent / "data" / "lstm_before_gru.pt"
"""A two-layer LSTM checkpoint written before GRU cells and the other options existed (its
weights named `encoder.lstm.*`); lstm_before_gru.json holds what that code translated."""
SIZES = {"embedding_size": 16, "hidden_size": 32, "num_layers": 2, "dropout": 0.0}
"""Its sizes; every option added later has its default."""


def test_reload_translates_identically(tiny_checkpoint_path: Path, tmp_path: Path) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint_path)
    before = Translator.from_checkpoint(checkpoint, device="cpu")
    save_checkpoint(checkpoint, tmp_path / "copy.pt")
    after = Translator.load(tmp_path / "copy.pt", device="cpu")
    for beam_size in (1, 4):
        assert after.translate(TEXTS, SearchOptions(beam_size=beam_size)) == before.translate(
            TEXTS, SearchOptions(beam_size=beam_size)
        )
    assert (after.src_lang, after.tgt_lang, after.metadata) == ("de", "en", {"step": 600})


def test_a_checkpoint_written_before_gru_cells_translates_as_it_did(tmp_path: Path) -> None:
    expected = json.loads(BEFORE_GRU.with_suffix(".json").read_text(encoding="utf-8"))
    texts = expected["texts"]
    for path in (BEFORE_GRU, tmp_path / "saved_again.pt"):
        translator = Translator.load(path, device="cpu")
        config = translator.model.config
        assert config == ModelConfig(config.src_vocab_size, config.tgt_vocab_size, **SIZES)
        for beam_size in (1, 4):
            translations = translator.translate(texts, SearchOptions(beam_size=beam_size))
            assert translations == expected[f"beam{beam_size}"]
        ranked = translator.search(translator.encode(texts), SearchOptions(beam_size=4, n_best=2))
        scores = [[hyp.score for hyp in hyps] for hyps in ranked]
        for found, wanted in zip(scores, expected["beam4_scores"], strict=True):
            assert found == pytest.approx(wanted, abs=2e-5)
        save_checkpoint(load_checkpoint(path), tmp_path / "saved_again.pt")
    assert "encoder.rnn.weight_ih_l1" in load_checkpoint(tmp_path / "saved_again.pt").model_state
    opened = load_checkpoint(BEFORE_GRU, weights=False)  # as the server opens its models
    assert opened.config == load_checkpoint(BEFORE_GRU).config


def assert_one_line_error(path: Path, match: str) -> None:
    with pytest.raises(CheckpointError, match=match) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path / "nope.pt", "no such checkpoint file")


def test_truncated_file(tiny_checkpoint_path: Path, tmp_path: Path) -> None:
    data = tiny_checkpoint_path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    assert_one_line_error(tmp_path / "cut.pt", "truncated or corrupt")


def test_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / "noise.pt").write_bytes(os.urandom(4096))
    assert_one_line_error(tmp_path / "noise.pt", "truncated or corrupt")


def test_other_torch_file(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    assert_one_line_error(tmp_path / "other.pt", "not a seq2seq checkpoint")


def rewrite(source: Path, target: Path, **changes: object) -> Path:
    payload = torch.load(source, weights_only=True)
    payload.update(changes)
    torch.save(payload, target)
    return target


def test_newer_format_version(tiny_checkpoint_path: Path, tmp_path: Path) -> None:
    path = rewrite(tiny_checkpoint_path, tmp_path / "v9.pt", version=9)
    assert_one_line_error(path, "format version 9")


def test_config_that_does_not_match_weights(tiny_checkpoint_path: Path, tmp_path: Path) -> None:
    config = load_checkpoint(tiny_checkpoint_path).config.to_dict() | {"hidden_size": 128}
    path = rewrite(tiny_checkpoint_path, tmp_path / "shape.pt", model_config=config)
    assert_one_line_error(path, "incompatible checkpoint")


def test_unknown_config_key(tiny_checkpoint_path: Path, tmp_path: Path) -> None:
    config = load_checkpoint(tiny_checkpoint_path).config.to_dict() | {"attention": "luong"}
    path = rewrite(tiny_checkpoint_path, tmp_path / "key.pt", model_config=config)
    assert_one_line_error(path, "unknown model config keys: attention")


class Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


def test_loading_never_runs_pickled_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"format": FORMAT, "version": 1, "payload": Exploit()}, tmp_path / "evil.pt")
    assert_one_line_error(tmp_path / "evil.pt", "truncated or corrupt")
    assert not (tmp_path / "pwned").exists()


def test_failed_save_keeps_the_previous_file(
    tiny_checkpoint_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint_path)
    path = tmp_path / "model.pt"
    save_checkpoint(checkpoint, path)
    good = path.read_bytes()

    def crash(payload: object, file: object) -> None:
        file.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(checkpoint, path)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_temporary_files_of_killed_saves_are_removed(
    tiny_checkpoint_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoint, names = load_checkpoint(tiny_checkpoint_path), []
    make_temporary = tempfile.mkstemp

    def recorded(*args: object, **kwargs: object) -> tuple[int, str]:
        handle, name = make_temporary(*args, **kwargs)  # type: ignore[call-overload]
        names.append(name)
        return handle, name  # type: ignore[no-any-return]

    monkeypatch.setattr(tempfile, "mkstemp", recorded)
    for name in ("last.pt", "step-10.pt"):
        save_checkpoint(checkpoint, tmp_path / name)
    monkeypatch.undo()
    stale = [Path(name) for name in names]
    for path in stale:  # what a process killed between writing and renaming leaves
        path.write_bytes(b"half a checkpoint")
    kept = [tmp_path / ".last.pt", tmp_path / ".last.pt.bak", tmp_path / "last.pt.x1y2z3w4"]
    for path in kept:
        path.write_bytes(b"not a temporary checkpoint")
    assert remove_stale_temporaries(tmp_path) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["last.pt", "step-10.pt", *(p.name for p in kept)]
    )
    assert remove_stale_temporaries(tmp_path / "absent") == []


def test_from_model_copies_weights_to_cpu(tiny_checkpoint_path: Path) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint_path)
    model = checkpoint.build_model()
    snapshot = Checkpoint.from_model(model, checkpoint.tokenizers)
    assert snapshot.config == checkpoint.config
    for name, tensor in snapshot.model_state.items():
        assert torch.equal(tensor, checkpoint.model_state[name])


def test_loading_a_small_model_does_not_import_the_compiler(tiny_checkpoint_path: Path) -> None:
    """The shape check builds a small model on the CPU: on the meta device its initialisation
    imports torch._dynamo, a second of every `seq2seq translate`."""
    code = (
        "import sys; from seq2seq import load_checkpoint; "
        f"load_checkpoint({str(tiny_checkpoint_path)!r}); "
        "print('torch._dynamo' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_model_info_without_weights_counts_them_without_the_compiler(
    tiny_checkpoint_path: Path,
) -> None:
    """The server's /models reads a codec's info (the weights left out); counting them once
    built the model on the meta device, importing torch._dynamo on the first request."""
    code = (
        "import sys; from seq2seq import TextCodec, Translator; "
        f"path = {str(tiny_checkpoint_path)!r}; "
        "print(TextCodec.load(path).info()['parameters'], 'torch._dynamo' in sys.modules, "
        "Translator.load(path, device='cpu').model.num_parameters())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    counted, compiler, built = result.stdout.split()
    assert compiler == "False" and int(counted) == int(built) > 0


def test_a_tied_weight_counts_once() -> None:
    shared = torch.zeros(4, 3)
    assert parameter_count({"a": shared, "b": shared, "c": torch.zeros(2)}) == 14
