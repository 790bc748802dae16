"""Parallel corpora through Hugging Face `datasets`: hub datasets, local text files, TSV, JSONL.

Local layouts, for any directory `path`:
- 'parallel': `{split}.{lang}` or `{split}.{lang}.gz`, one sentence a line (the Multi30k layout;
  a preset's `hub_fallback` is read instead when the default directory is absent, see mirrors);
- 'tsv': `{split}.tsv[.gz]`, source and target in columns `src_field`/`tgt_field` (default 0, 1);
- 'jsonl': `{split}.jsonl[.gz]`, one object a line with fields `src_field`/`tgt_field`.
Every loader returns a `datasets.Dataset` with string columns `src` and `tgt`; `encode_split`
adds `src_ids`/`tgt_ids`, filters, and keeps the result in an Arrow cache file.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from itertools import zip_longest
from pathlib import Path
from typing import IO, Any

import datasets

from seq2seq import TokenizerPair
from training import mirrors
from training.config import DataConfig, default_data_dir

Row = dict[str, Any]


def data_dir(config: DataConfig) -> Path:
    """The configured local data directory, or the default one."""
    return Path(config.path) if config.path else default_data_dir()


def describe_source(config: DataConfig) -> str:
    """Where the sentence pairs come from, in a few words for the log."""
    mirror = mirrors.fallback(config)
    if mirror is not None:
        return mirrors.describe(mirror)
    if config.format == "hub":
        return f"{config.path} from the Hugging Face hub"
    return f"{data_dir(config)} ({config.format})"


def open_text(path: Path) -> IO[str]:
    """Open a plain or gzipped UTF-8 text file for reading."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


def read_lines(path: Path) -> list[str]:
    """All lines of a plain or .gz file, line endings removed."""
    with open_text(path) as handle:
        return [line.rstrip("\r\n") for line in handle]


def split_file(directory: Path, stem: str) -> Path:
    """`directory/stem`, or `directory/stem.gz`; a one-line error names both when neither exists."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no data file {directory / stem} (or {stem}.gz) found")


def parallel_files(config: DataConfig, split: str) -> tuple[Path, Path]:
    """Source and target files of one split in the `{split}.{lang}[.gz]` layout."""
    directory = data_dir(config)
    return (
        split_file(directory, f"{split}.{config.src_lang}"),
        split_file(directory, f"{split}.{config.tgt_lang}"),
    )


def iter_pairs(config: DataConfig, split: str) -> Iterator[tuple[str, str]]:
    """(source, target) strings of a local split (or of its hub mirror), in file order."""
    mirror = mirrors.fallback(config)
    if mirror is not None:
        yield from mirrors.mirror_pairs(mirror, config, split)
    elif config.format == "parallel":
        yield from _iter_parallel(*parallel_files(config, split))
    elif config.format == "tsv":
        yield from _iter_tsv(split_file(data_dir(config), f"{split}.tsv"), config)
    elif config.format == "jsonl":
        yield from _iter_jsonl(split_file(data_dir(config), f"{split}.jsonl"), config)
    else:
        raise ValueError(f"data.format must be parallel, tsv, jsonl or hub, got {config.format!r}")


def _iter_parallel(src_path: Path, tgt_path: Path) -> Iterator[tuple[str, str]]:
    counts = [0, 0]
    with open_text(src_path) as src, open_text(tgt_path) as tgt:
        for src_line, tgt_line in zip_longest(src, tgt):
            counts[0] += src_line is not None
            counts[1] += tgt_line is not None
            if src_line is not None and tgt_line is not None:
                yield src_line.rstrip("\r\n"), tgt_line.rstrip("\r\n")
    if counts[0] != counts[1]:
        raise ValueError(
            f"parallel files differ in length: {src_path} has {counts[0]} lines, "
            f"{tgt_path} has {counts[1]}"
        )


def _iter_tsv(path: Path, config: DataConfig) -> Iterator[tuple[str, str]]:
    src_col, tgt_col = int(config.src_field or 0), int(config.tgt_field or 1)
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for number, row in enumerate(reader, start=1):
            if len(row) <= max(src_col, tgt_col):
                raise ValueError(f"{path}:{number}: expected columns {src_col} and {tgt_col}")
            yield row[src_col], row[tgt_col]


def _iter_jsonl(path: Path, config: DataConfig) -> Iterator[tuple[str, str]]:
    src_key, tgt_key = _fields(config)
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                yield str(get_field(row, src_key)), str(get_field(row, tgt_key))
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: bad JSONL record ({error})") from error


def _fields(config: DataConfig) -> tuple[str, str]:
    return config.src_field or config.src_lang, config.tgt_field or config.tgt_lang


def get_field(row: Row, dotted: str) -> Any:
    """`row['translation']['de']` for 'translation.de'."""
    value: Any = row
    for key in dotted.split("."):
        value = value[key]
    return value


def load_split(config: DataConfig, split: str) -> datasets.Dataset:
    """One split as a Dataset with `src` and `tgt` text columns (hub or local)."""
    if config.format == "hub":
        return _hub_split(config, split, streaming=False)  # type: ignore[return-value]
    src, tgt = [], []
    for source, target in iter_pairs(config, split):
        src.append(source)
        tgt.append(target)
    return datasets.Dataset.from_dict({"src": src, "tgt": tgt})


def stream_split(config: DataConfig, split: str) -> datasets.IterableDataset:
    """One split as an IterableDataset with `src` and `tgt`, for corpora larger than memory."""
    if config.format == "hub":
        return _hub_split(config, split, streaming=True)  # type: ignore[return-value]

    def generate() -> Iterator[Row]:
        for source, target in iter_pairs(config, split):
            yield {"src": source, "tgt": target}

    return datasets.IterableDataset.from_generator(generate)


def _hub_split(
    config: DataConfig, split: str, *, streaming: bool
) -> datasets.Dataset | datasets.IterableDataset:
    if not config.path:
        raise ValueError("data.path must name a hub dataset (e.g. bentrevett/multi30k) for 'hub'")
    loaded = datasets.load_dataset(config.path, config.hub_config, split=split, streaming=streaming)
    src_key, tgt_key = _fields(config)

    def select(row: Row) -> Row:
        return {"src": str(get_field(row, src_key)), "tgt": str(get_field(row, tgt_key))}

    columns = list(loaded.column_names or [])
    return loaded.map(select, remove_columns=columns)  # type: ignore[union-attr]


def keep_pair(src: str, tgt: str) -> bool:
    """Both sides have text."""
    return bool(src.strip()) and bool(tgt.strip())


def keep_lengths(src_len: int, tgt_len: int, *, max_length: int, max_ratio: float) -> bool:
    """Both sides non-empty, at most `max_length` subwords, length ratio at most `max_ratio`."""
    if not 0 < src_len <= max_length or not 0 < tgt_len <= max_length:
        return False
    return max(src_len, tgt_len) <= max_ratio * min(src_len, tgt_len)


def clean(dataset: datasets.Dataset, *, dedupe: bool) -> datasets.Dataset:
    """Drop pairs with an empty side and, if asked, exact duplicate pairs (first one kept)."""
    seen: set[tuple[str, str]] = set()

    def keep(row: Row) -> bool:
        if not keep_pair(row["src"], row["tgt"]):
            return False
        if dedupe:
            key = (row["src"], row["tgt"])
            if key in seen:
                return False
            seen.add(key)
        return True

    return dataset.filter(keep, keep_in_memory=True)


def encoder(tokenizers: TokenizerPair) -> Callable[[dict[str, list[str]]], dict[str, Any]]:
    """A batched map function adding `src_ids` and `tgt_ids`."""

    def encode(batch: dict[str, list[str]]) -> dict[str, Any]:
        return {
            "src_ids": tokenizers.src.encode(batch["src"]),
            "tgt_ids": tokenizers.tgt.encode(batch["tgt"]),
        }

    return encode


def cache_key(config: DataConfig, split: str, tokenizers: TokenizerPair) -> str:
    """A digest of everything the encoded split depends on: files, filters, tokenizers."""
    parts: list[Any] = [config.format, str(config.path), config.hub_config, split, _fields(config)]
    parts.append(mirrors.fallback(config))
    parts += [config.max_length, config.max_length_ratio, config.dedupe]
    if config.format != "hub":
        for path in sorted(data_dir(config).glob(f"{split}.*")):
            stat = path.stat()
            parts.append((path.name, stat.st_size, stat.st_mtime_ns))
    digest = hashlib.sha256(repr(parts).encode())
    digest.update(tokenizers.src.proto + tokenizers.tgt.proto)
    return digest.hexdigest()[:16]


def encode_split(
    config: DataConfig, split: str, tokenizers: TokenizerPair, cache_dir: Path, *, filter_: bool
) -> datasets.Dataset:
    """The split with `src_ids`/`tgt_ids`, cleaned and (if `filter_`) length-filtered, cached."""
    cache = cache_dir / f"{split}-{cache_key(config, split, tokenizers)}-{int(filter_)}.arrow"
    if cache.is_file():
        return datasets.Dataset.from_file(str(cache))
    cache_dir.mkdir(parents=True, exist_ok=True)
    raw = clean(load_split(config, split), dedupe=config.dedupe and filter_)
    encoded = raw.map(encoder(tokenizers), batched=True, batch_size=2000, keep_in_memory=True)
    if filter_:
        encoded = encoded.filter(_length_filter(config), keep_in_memory=True)
    encoded.flatten_indices().map(lambda row: row, cache_file_name=str(cache))
    return datasets.Dataset.from_file(str(cache))


def _length_filter(config: DataConfig) -> Callable[[Row], bool]:
    def keep(row: Row) -> bool:
        return keep_lengths(
            len(row["src_ids"]),
            len(row["tgt_ids"]),
            max_length=config.max_length,
            max_ratio=config.max_length_ratio,
        )

    return keep


def encode_stream(
    config: DataConfig, split: str, tokenizers: TokenizerPair
) -> datasets.IterableDataset:
    """A streamed, encoded and filtered split (no cache: it is read as training goes)."""
    stream = stream_split(config, split).filter(lambda row: keep_pair(row["src"], row["tgt"]))
    stream = stream.map(encoder(tokenizers), batched=True, batch_size=1000)
    return stream.filter(_length_filter(config))
