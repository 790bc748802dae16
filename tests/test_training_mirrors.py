"""Hub mirrors: when the local corpus is absent, a preset reads its hub dataset under the local
split names; a hub out of reach is one line, at once. No test touches the network: the hub
dataset is a directory laid out as romrawinjp/multi30k is, read by `datasets.load_dataset`."""

from __future__ import annotations

import dataclasses
import time
import urllib.error
from pathlib import Path
from typing import Any

import datasets
import pytest
from conftest import number_pairs, write_multi30k_mirror

import training.config
from seq2seq.cli import main
from training import data, mirrors
from training.config import REPO, DataConfig, load_config
from training.train import train

PRESET = REPO / "training" / "configs" / "multi30k_de_en.yaml"
HUB_SPLITS = {
    "train": number_pairs(400, seed=31),
    "validation": number_pairs(5, seed=32),
    "test": number_pairs(4, seed=33),
}


@pytest.fixture()
def no_local_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone with no ../shared/data/multi30k beside it and no SEQ2SEQ_DATA."""
    monkeypatch.setattr(training.config, "REPO", tmp_path / "clone")
    monkeypatch.delenv("SEQ2SEQ_DATA", raising=False)
    return tmp_path / "shared" / "data" / "multi30k"


@pytest.fixture()
def local_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The Multi30k mirror's split names and columns, its files in a local directory."""
    root = str(write_multi30k_mirror(tmp_path / "hub" / "multi30k", HUB_SPLITS))
    monkeypatch.setitem(mirrors.MIRRORS, root, dataclasses.replace(mirrors.MULTI30K, name=root))
    return root


def test_local_splits_are_read_from_the_hub_splits(no_local_data: Path, local_mirror: str) -> None:
    config = DataConfig(hub_fallback=local_mirror, src_lang="de", tgt_lang="en")
    for local, hub in (("train", "train"), ("val", "validation"), ("test_2016_flickr", "test")):
        loaded = data.load_split(config, local)
        assert list(zip(loaded["src"], loaded["tgt"], strict=True)) == HUB_SPLITS[hub]
    czech_french = DataConfig(hub_fallback=local_mirror, src_lang="cs", tgt_lang="fr")
    (pair, *_) = data.iter_pairs(czech_french, "val")
    english = HUB_SPLITS["validation"][0][1]
    assert pair == (f"cs: {english}", f"fr: {english}")
    assert local_mirror in data.describe_source(config)
    assert str(no_local_data) in data.describe_source(config)


def test_splits_and_languages_the_mirror_lacks_are_one_line_errors(
    no_local_data: Path, local_mirror: str
) -> None:
    config = DataConfig(hub_fallback=local_mirror, src_lang="de", tgt_lang="en")
    with pytest.raises(ValueError, match=r"no split 'test_2017_flickr' .*SEQ2SEQ_DATA=DIR"):
        data.load_split(config, "test_2017_flickr")
    with pytest.raises(ValueError, match="no language 'ja'"):
        data.load_split(dataclasses.replace(config, tgt_lang="ja"), "val")


def test_local_data_comes_first(
    tmp_path: Path, no_local_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = DataConfig(hub_fallback=mirrors.MULTI30K.name)
    assert mirrors.fallback(config) == mirrors.MULTI30K
    assert mirrors.fallback(dataclasses.replace(config, hub_fallback=None)) is None
    assert mirrors.fallback(dataclasses.replace(config, path=str(tmp_path))) is None
    assert mirrors.fallback(dataclasses.replace(config, format="tsv")) is None
    monkeypatch.setenv("SEQ2SEQ_DATA", str(tmp_path / "elsewhere"))  # set, even if absent
    assert mirrors.fallback(config) is None
    monkeypatch.delenv("SEQ2SEQ_DATA")
    no_local_data.mkdir(parents=True)
    assert mirrors.fallback(config) is None


def never_called(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("datasets.load_dataset retries for about 25 s when offline")


def test_offline_training_stops_at_once_in_one_line(
    tmp_path: Path,
    no_local_data: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", never_called)
    started = time.monotonic()
    assert main(["train", str(PRESET), f"--run_dir={tmp_path / 'run'}"]) == 2
    assert time.monotonic() - started < 10
    *_, line = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("seq2seq train: error: no data directory ")
    for part in (str(no_local_data), "romrawinjp/multi30k", "HF_HUB_OFFLINE", "SEQ2SEQ_DATA=DIR"):
        assert part in line
    assert "network access" in line


def test_unreachable_hub_is_one_line_without_retries(
    no_local_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_route(*args: Any, **kwargs: Any) -> Any:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(mirrors.hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(mirrors.urllib.request, "urlopen", no_route)
    monkeypatch.setattr(datasets, "load_dataset", never_called)
    config = DataConfig(hub_fallback=mirrors.MULTI30K.name, src_lang="de", tgt_lang="en")
    with pytest.raises(FileNotFoundError) as error:
        data.load_split(config, "train")
    message = str(error.value)
    assert "\n" not in message and "Name or service not known" in message
    assert str(no_local_data) in message and "romrawinjp/multi30k" in message


def test_a_failing_hub_read_is_one_line(
    no_local_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Couldn't reach 'romrawinjp/multi30k' on the Hub (ConnectError)")

    monkeypatch.setattr(mirrors, "check_reachable", lambda name: None)
    monkeypatch.setattr(datasets, "load_dataset", lost)
    config = DataConfig(hub_fallback=mirrors.MULTI30K.name, src_lang="de", tgt_lang="en")
    with pytest.raises(FileNotFoundError, match=r"Couldn't reach .*; set SEQ2SEQ_DATA=DIR"):
        list(data.iter_pairs(config, "val"))


def test_a_run_trains_on_the_mirror_and_resumes_offline(
    tmp_path: Path,
    no_local_data: Path,
    local_mirror: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tiny = REPO / "tests" / "data" / "tiny_train.yaml"
    overrides = [f"--run_dir={tmp_path / 'run'}", f"--data.hub_fallback={local_mirror}"]
    train(load_config(tiny, [*overrides, "--train.max_steps=2"]))
    assert f"data: {local_mirror} from the Hugging Face hub" in capsys.readouterr().err
    mirrors._read.cache_clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", never_called)
    monkeypatch.setattr(mirrors, "check_reachable", never_called)
    outcome = train(load_config(tiny, [*overrides, "--train.max_steps=4"]), resume=True)
    assert outcome.reason == "max_steps"  # tokenizers and encoded splits came from the run


def test_presets_fall_back_to_the_multi30k_mirror() -> None:
    for preset in sorted((REPO / "training" / "configs").glob("multi30k_*.yaml")):
        config = training.config.load_config(preset)
        assert config.data.hub_fallback == mirrors.MULTI30K.name, preset.name
        mirrors.MULTI30K.check_languages(config.data.src_lang, config.data.tgt_lang)
        for split in (config.data.train_split, config.data.valid_split):
            mirrors.MULTI30K.hub_split(split)
