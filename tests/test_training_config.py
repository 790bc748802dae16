"""TrainConfig: presets load, overrides apply, unknown keys and bad types are one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seq2seq import ModelSizes
from training.config import (
    REPO,
    DataConfig,
    LoopConfig,
    TrainConfig,
    default_data_dir,
    load_config,
    parse_override,
)

PRESETS = sorted((REPO / "training" / "configs").glob("*.yaml"))


def write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("preset", PRESETS, ids=lambda path: path.name)
def test_presets_load_and_comment_every_key(preset: Path) -> None:
    loaded = load_config(preset).to_dict()
    for section, values in yaml.safe_load(preset.read_text()).items():  # every key as written
        for key, value in values.items() if isinstance(values, dict) else [(None, values)]:
            got = loaded[section] if key is None else loaded[section][key]
            assert got == (pytest.approx(value) if isinstance(value, float) else value), key
    for line in preset.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and not line.rstrip().endswith(":"):
            assert "#" in line, f"uncommented key in {preset.name}: {line.strip()}"


def test_overrides_nested_keys_and_types(tmp_path: Path) -> None:
    path = write(tmp_path, {"model": {"hidden_size": 128}, "train": {"max_steps": 5}})
    config = load_config(
        path,
        [
            "--model.hidden_size=256",
            "--optim.lr=1e-3",
            "--seed=7",
            "--data.path=/data",
            "--optim.betas=[0.9, 0.98]",
        ],
    )
    assert config.model.hidden_size == 256
    assert config.optim.lr == pytest.approx(0.001)
    assert config.seed == 7
    assert config.data.path == "/data"
    assert config.optim.betas == [0.9, 0.98]


def test_unknown_key_is_a_one_line_error(tmp_path: Path) -> None:
    path = write(tmp_path, {"model": {"hiden_size": 128}})
    with pytest.raises(ValueError, match=r"unknown config key model\.hiden_size") as error:
        load_config(path)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="unknown config key nothing"):
        load_config(write(tmp_path, {}), ["--nothing=1"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--model.hidden_size=big", "model.hidden_size must be int, got 'big'"),
        ("--model.reverse_source=3", "model.reverse_source must be bool"),
        ("--optim.lr=fast", "optim.lr must be float"),
        ("--model.num_layers=2.5", "model.num_layers must be int"),
        ("--model=3", "model must be a mapping"),
        ("--model.bidirectional_encoder=1", "model.bidirectional_encoder must be bool, got 1"),
        ("--train.max_steps=true", "train.max_steps must be int, got True"),
        ("--data.path=3", "data.path must be str, got 3"),
        ("--seed=null", "seed must not be null"),
        ("--optim.betas=[0.9, x]", r"optim.betas.1 must be float, got 'x'"),
    ],
)
def test_bad_types_name_the_key(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(write(tmp_path, {}), [override])


def test_bad_override_syntax_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must look like --key=value"):
        parse_override("--model.hidden_size")
    with pytest.raises(ValueError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_data_dir_follows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQ2SEQ_DATA", "/somewhere/else")
    assert default_data_dir() == Path("/somewhere/else")
    monkeypatch.delenv("SEQ2SEQ_DATA")
    assert default_data_dir() == REPO.parent / "shared" / "data" / "multi30k"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--train.precision=fp8", "precision must be one of auto, fp32, bf16, fp16, got 'fp8'"),
        ("--optim.schedule=step", "optim.schedule must be one of"),
        ("--model.hidden_size=0", "model.hidden_size must be positive"),
        ("--model.dropout=1.5", r"model.dropout must be in \[0, 1\), got 1.5"),
        ("--model.tie_embeddings=true", "model.tie_embeddings needs embedding_size == hidden"),
        ("--train.max_minutes=0", "set at least one of train.max_steps"),
        ("--model.cell=rnn", "model.cell must be one of lstm, gru, got 'rnn'"),
        ("--train.batch_tokens=0", "train.batch_tokens must be positive, got 0"),
        ("--optim.label_smoothing=1.5", r"optim.label_smoothing must be in \[0, 1\), got 1.5"),
        ("--data.format=csv", "data.format must be one of parallel, tsv, jsonl, hub, got 'csv'"),
    ],
)
def test_bad_values_are_rejected(tmp_path: Path, override: str, message: str) -> None:
    path = write(tmp_path, {"train": {"max_minutes": 1}})
    with pytest.raises(ValueError, match=message):
        load_config(path, [override])


def test_source_and_target_vocabularies_have_their_own_sizes(tmp_path: Path) -> None:
    path = write(tmp_path, {"train": {"max_steps": 5}, "tokenizer": {"vocab_size": 5000}})
    assert load_config(path).tokenizer.sizes == (5000, 5000)
    sizes = ["--tokenizer.src_vocab_size=8000", "--tokenizer.tgt_vocab_size=4000"]
    assert load_config(path, sizes).tokenizer.sizes == (8000, 4000)
    assert load_config(path, sizes[1:]).tokenizer.sizes == (5000, 4000)
    message = "^tokenizer.joint takes vocab_size only, not src_vocab_size or tgt_vocab_size$"
    with pytest.raises(ValueError, match=message):
        load_config(path, ["--tokenizer.joint=true", sizes[0]])


def test_the_model_options_arrive_as_typed_fields(tmp_path: Path) -> None:
    path = write(tmp_path, {"train": {"max_steps": 5}})
    overrides = ["--model.cell=gru", "--model.bidirectional_encoder=true", "--model.residual=yes"]
    config = load_config(path, [*overrides, "--model.num_layers=3", "--optim.lr=1e-3"])
    model = config.model
    assert (model.cell, model.bidirectional_encoder, model.residual) == ("gru", True, True)
    assert config.optim.lr == 0.001  # YAML 1.1 reads 1e-3 as text; it is a number here
    assert config.to_dict()["model"]["cell"] == "gru"


def test_unknown_keys_come_before_other_problems_and_list_the_section(tmp_path: Path) -> None:
    path = write(tmp_path, {"model": {"zz": 1, "hidden_size": "big", "celll": "gru"}})
    with pytest.raises(ValueError, match=r"unknown config key model\.celll") as error:
        load_config(path)
    for key in ("cell", "bidirectional_encoder", "residual", "hidden_size"):
        assert key in str(error.value)


def test_fields_are_documented_and_sections_check_values_when_built() -> None:
    fields = LoopConfig.__pydantic_fields__  # type: ignore[attr-defined]
    assert fields["batch_tokens"].description.startswith("Padded tokens per batch")
    assert all(info.description for info in fields.values())
    with pytest.raises(ValueError, match="format"):
        DataConfig(format="csv")  # type: ignore[arg-type]
    assert TrainConfig().model == ModelSizes()
