"""Multi30k files for the benchmarks: locate them, read them, and stop with one line if absent."""

from __future__ import annotations

import gzip
import os
import sys
from pathlib import Path

DATA_DIR = Path(os.environ.get("SEQ2SEQ_MULTI30K", "/work/shared/data/multi30k"))
"""Where `{split}.{lang}.gz` live; override with the SEQ2SEQ_MULTI30K environment variable."""


def split_path(split: str, lang: str) -> Path:
    """The gzipped text file of one split and language."""
    return DATA_DIR / f"{split}.{lang}.gz"


def require(*splits: str, langs: tuple[str, ...] = ("de", "en")) -> None:
    """Exit with a one-line message when any needed Multi30k file is missing."""
    missing = [
        split_path(s, lang) for s in splits for lang in langs if not split_path(s, lang).exists()
    ]
    if missing:
        sys.exit(f"Multi30k data not found ({missing[0]}); set SEQ2SEQ_MULTI30K to its folder")


def read_lines(split: str, lang: str) -> list[str]:
    """The stripped lines of one split and language."""
    with gzip.open(split_path(split, lang), "rt", encoding="utf-8") as handle:
        return [line.strip() for line in handle]


def read_pairs(split: str, src_lang: str = "de", tgt_lang: str = "en") -> list[tuple[str, str]]:
    """Aligned (source, target) sentence pairs of one split."""
    return list(zip(read_lines(split, src_lang), read_lines(split, tgt_lang), strict=True))
