"""Multi30k files for the benchmarks: locate them, read them, and stop with one line if absent."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

from training.config import default_data_dir

DATA_DIR = default_data_dir()
"""Where `{split}.{lang}.gz` live: $SEQ2SEQ_DATA, else ../shared/data/multi30k by the repo."""


def split_path(split: str, lang: str) -> Path:
    """The gzipped text file of one split and language."""
    return DATA_DIR / f"{split}.{lang}.gz"


def require(*splits: str, langs: tuple[str, ...] = ("de", "en")) -> None:
    """Exit with a one-line message when any needed Multi30k file is missing."""
    missing = [
        split_path(s, lang) for s in splits for lang in langs if not split_path(s, lang).exists()
    ]
    if missing:
        sys.exit(f"Multi30k data not found ({missing[0]}); set SEQ2SEQ_DATA to its folder")


def read_lines(split: str, lang: str) -> list[str]:
    """The stripped lines of one split and language."""
    with gzip.open(split_path(split, lang), "rt", encoding="utf-8") as handle:
        return [line.strip() for line in handle]


def read_pairs(split: str, src_lang: str = "de", tgt_lang: str = "en") -> list[tuple[str, str]]:
    """Aligned (source, target) sentence pairs of one split."""
    return list(zip(read_lines(split, src_lang), read_lines(split, tgt_lang), strict=True))
