"""Corpus loading (plain, .gz, TSV, JSONL, hub mapping), filters, Arrow cache, batch sampler."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import datasets
import pytest
import torch
from conftest import number_pairs

from seq2seq import BOS_ID, EOS_ID, TokenizerPair
from training import data
from training.batching import DatasetBatches, TokenBatchSampler, collate, stream_batches
from training.config import DataConfig


def write_parallel(directory: Path, split: str, pairs: list[tuple[str, str]], *, gz: bool) -> None:
    for lang, lines in (("de", [s for s, _ in pairs]), ("en", [t for _, t in pairs])):
        text = "".join(f"{line}\n" for line in lines)
        if gz:
            with gzip.open(directory / f"{split}.{lang}.gz", "wt", encoding="utf-8") as handle:
                handle.write(text)
        else:
            (directory / f"{split}.{lang}").write_text(text, encoding="utf-8")


@pytest.mark.parametrize("gz", [False, True])
def test_parallel_files_plain_and_gz(tmp_path: Path, gz: bool) -> None:
    pairs = [("ein Hund", "a dog"), ("", "empty source"), ("zwei Katzen", "two cats")]
    write_parallel(tmp_path, "train", pairs, gz=gz)
    dataset = data.load_split(DataConfig(path=str(tmp_path)), "train")
    assert list(zip(dataset["src"], dataset["tgt"], strict=True)) == pairs
    cleaned = data.clean(dataset, dedupe=False)
    assert list(cleaned["src"]) == ["ein Hund", "zwei Katzen"]


def test_mismatched_line_counts_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "train.de").write_text("a\nb\nc\n")
    (tmp_path / "train.en").write_text("a\nb\n")
    with pytest.raises(ValueError) as error:
        data.load_split(DataConfig(path=str(tmp_path)), "train")
    message = str(error.value)
    assert "train.de has 3 lines" in message and "train.en has 2" in message


def test_missing_split_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"train\.de"):
        data.load_split(DataConfig(path=str(tmp_path)), "train")


def test_tsv_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("eins\tone\nzwei\ttwo\n")
    tsv = data.load_split(DataConfig(format="tsv", path=str(tmp_path)), "train")
    assert list(tsv["tgt"]) == ["one", "two"]
    rows = [
        {"translation": {"de": "drei", "en": "three"}},
        {"translation": {"de": "vier", "en": "four"}},
    ]
    with gzip.open(tmp_path / "train.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    config = DataConfig(
        format="jsonl", path=str(tmp_path), src_field="translation.de", tgt_field="translation.en"
    )
    jsonl = data.load_split(config, "train")
    assert list(zip(jsonl["src"], jsonl["tgt"], strict=True)) == [
        ("drei", "three"),
        ("vier", "four"),
    ]


def test_hub_fields_are_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = datasets.Dataset.from_dict({"de": ["fünf"], "en": ["five"], "id": [0]})
    calls = []

    def fake_load(
        name: str, config: str | None, *, split: str, streaming: bool
    ) -> datasets.Dataset:
        calls.append((name, config, split, streaming))
        return hub

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    loaded = data.load_split(DataConfig(format="hub", path="bentrevett/multi30k"), "validation")
    assert calls == [("bentrevett/multi30k", None, "validation", False)]
    assert loaded.column_names == ["src", "tgt"] and loaded[0] == {"src": "fünf", "tgt": "five"}


def test_filters_and_dedupe() -> None:
    assert data.keep_lengths(5, 6, max_length=10, max_ratio=2.0)
    assert not data.keep_lengths(11, 6, max_length=10, max_ratio=2.0)
    assert not data.keep_lengths(2, 7, max_length=10, max_ratio=3.0)
    assert not data.keep_lengths(0, 3, max_length=10, max_ratio=3.0)
    dataset = datasets.Dataset.from_dict({"src": ["a", "a", "b"], "tgt": ["x", "x", "y"]})
    assert len(data.clean(dataset, dedupe=True)) == 2


def test_encoded_split_is_cached(tmp_path: Path, tiny_tokenizers: TokenizerPair) -> None:
    write_parallel(tmp_path, "train", number_pairs(300, seed=3), gz=True)
    config = DataConfig(path=str(tmp_path), max_length=8)
    first = data.encode_split(config, "train", tiny_tokenizers, tmp_path / "cache", filter_=True)
    assert all(len(ids) <= 8 for ids in first["src_ids"])
    cached = list((tmp_path / "cache").glob("train-*.arrow"))
    assert len(cached) == 1
    again = data.encode_split(config, "train", tiny_tokenizers, tmp_path / "cache", filter_=True)
    assert again.cache_files[0]["filename"] == str(cached[0])
    assert list(again["tgt_ids"]) == list(first["tgt_ids"])


def test_stream_matches_in_memory(tmp_path: Path, tiny_tokenizers: TokenizerPair) -> None:
    write_parallel(tmp_path, "train", number_pairs(100, seed=4), gz=False)
    config = DataConfig(path=str(tmp_path))
    stream = data.encode_stream(config, "train", tiny_tokenizers)
    assert isinstance(stream, datasets.IterableDataset)
    batches = list(stream_batches(stream, batch_tokens=60, buffer_size=30))
    assert sum(batch.src.size(0) for batch in batches) == 100


def lengths(count: int) -> list[tuple[int, int]]:
    return [(1 + (i * 7) % 23, 1 + (i * 5) % 19) for i in range(count)]


def test_sampler_covers_every_example_once_within_budget() -> None:
    sizes = lengths(500)
    sampler = TokenBatchSampler(sizes, batch_tokens=200, max_sentences=16, seed=3)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(500))
    for batch in batches:
        longest = max(max(sizes[i][0], sizes[i][1] + 1) for i in batch)
        assert len(batch) * longest <= 200 and len(batch) <= 16


def test_sampler_is_deterministic_per_epoch_and_resumable() -> None:
    sampler = TokenBatchSampler(lengths(300), batch_tokens=150, seed=5)
    epoch0 = sampler.batches(0)
    assert epoch0 == TokenBatchSampler(lengths(300), batch_tokens=150, seed=5).batches(0)
    assert epoch0 != sampler.batches(1)
    taken = [batch for _, batch in zip(range(4), sampler, strict=False)]
    resumed = TokenBatchSampler(lengths(300), batch_tokens=150, seed=5)
    resumed.load_state_dict(sampler.state_dict())
    assert taken + list(resumed) == sampler.shard(0)


def test_sampler_shards_per_rank() -> None:
    shards = [
        TokenBatchSampler(lengths(301), batch_tokens=100, seed=1, rank=rank, world_size=2)
        for rank in (0, 1)
    ]
    first, second = (list(shard) for shard in shards)
    assert len(first) == len(second)
    covered = {i for batch in first + second for i in batch}
    assert covered == set(range(301))
    assert not {tuple(b) for b in first} & {tuple(b) for b in second[:-1]}


def test_dataset_batches_pad_and_mark_targets(tiny_tokenizers: TokenizerPair) -> None:
    pairs = number_pairs(20, seed=6)
    dataset = datasets.Dataset.from_dict(
        {
            "src_ids": tiny_tokenizers.src.encode([s for s, _ in pairs]),
            "tgt_ids": tiny_tokenizers.tgt.encode([t for _, t in pairs]),
        }
    )
    sizes = list(zip(map(len, dataset["src_ids"]), map(len, dataset["tgt_ids"]), strict=True))
    batches = list(DatasetBatches(dataset, TokenBatchSampler(sizes, batch_tokens=80)))
    assert sum(batch.src.size(0) for batch in batches) == 20
    assert sum(batch.num_tokens for batch in batches) == sum(t + 1 for _, t in sizes)


def test_collate_pads_every_row_like_pad_sequence() -> None:
    rows = [[5, 6, 7], [8], [], [9, 10, 11, 12]]
    targets = [[3], [4, 5], [6], [7, 8, 9]]
    batch = collate(rows, targets)
    assert batch.src.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0], [0, 0, 0, 0], [9, 10, 11, 12]]
    assert batch.src_len.tolist() == [3, 1, 0, 4]
    assert batch.tgt_in.tolist() == [[BOS_ID, 3, 0, 0], [BOS_ID, 4, 5, 0], [BOS_ID, 6, 0, 0],
                                     [BOS_ID, 7, 8, 9]]  # fmt: skip
    assert batch.tgt_out.tolist() == [[3, EOS_ID, 0, 0], [4, 5, EOS_ID, 0], [6, EOS_ID, 0, 0],
                                      [7, 8, 9, EOS_ID]]  # fmt: skip
    assert batch.src.dtype == batch.tgt_in.dtype == torch.long
