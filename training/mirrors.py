"""Corpora read from the Hugging Face hub when their local directory is absent.

A preset in the `parallel` layout can name a hub dataset in `data.hub_fallback`. When neither
`data.path` nor `$SEQ2SEQ_DATA` is set and the default directory (`../shared/data/multi30k`)
does not exist, its splits are read from that dataset instead, under the local split names:
a `HubMirror` maps them to the hub's names (`val` -> `validation`, ...), and its fields are
the language codes. A hub that cannot be reached is one line naming the local directory, the
dataset and both ways out, within seconds: offline mode and a failed connection fail at once.
"""

from __future__ import annotations

import functools
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from huggingface_hub import constants as hub_constants

from training.config import DataConfig, default_data_dir


@dataclass(frozen=True)
class HubMirror:
    """A hub dataset holding a local corpus: one field per language, splits under other names."""

    name: str
    """The dataset's hub name (or a local directory laid out like it, for tests)."""
    splits: Mapping[str, str] = field(default_factory=dict)
    """Local split name -> hub split name; empty: the same names, whatever they are."""
    languages: tuple[str, ...] = ()
    """The language fields it has; empty: not known in advance."""
    text_columns_only: bool = False
    """Read only the two language columns (Parquet datasets with large other columns)."""

    def hub_split(self, split: str) -> str:
        """The hub's name of local split `split`; a one-line error for a split it lacks."""
        if not self.splits:
            return split
        if split not in self.splits:
            known = ", ".join(self.splits)
            raise ValueError(
                f"the hub dataset {self.name} has no split {split!r} (it has {known}); "
                "set SEQ2SEQ_DATA=DIR to a local copy for the others"
            )
        return self.splits[split]

    def check_languages(self, *languages: str) -> None:
        """A one-line error when the dataset lacks one of `languages`."""
        for language in languages:
            if self.languages and language not in self.languages:
                raise ValueError(
                    f"the hub dataset {self.name} has no language {language!r} "
                    f"(it has {', '.join(self.languages)})"
                )


MULTI30K = HubMirror(
    name="romrawinjp/multi30k",
    splits={"train": "train", "val": "validation", "test_2016_flickr": "test"},
    languages=("en", "de", "fr", "cs"),
    text_columns_only=True,  # each row also holds its Flickr image, 10.5 GB in all
)
"""Multi30k task 1 (29,000 / 1,014 / 1,000 sentences) in en, de, fr and cs. Its `test` is
test_2016_flickr: test_2017_flickr has no Czech, test_2018_flickr 1,071 sentences."""

MIRRORS: dict[str, HubMirror] = {MULTI30K.name: MULTI30K}
"""Known mirrors by hub name; any other name is read with its own split names."""


def fallback(config: DataConfig) -> HubMirror | None:
    """The mirror to read instead of the local directory, or None to read the directory."""
    if not config.hub_fallback or config.format != "parallel" or config.path:
        return None
    if os.environ.get("SEQ2SEQ_DATA") or default_data_dir().exists():
        return None
    return MIRRORS.get(config.hub_fallback) or HubMirror(config.hub_fallback)


def describe(mirror: HubMirror) -> str:
    """Where the data comes from, for the one line a run prints about it."""
    return (
        f"{mirror.name} from the Hugging Face hub (no directory {default_data_dir()}; "
        "SEQ2SEQ_DATA=DIR reads a local copy)"
    )


def mirror_pairs(mirror: HubMirror, config: DataConfig, split: str) -> Iterator[tuple[str, str]]:
    """(source, target) strings of local split `split`, read from the hub mirror."""
    mirror.check_languages(config.src_lang, config.tgt_lang)
    hub_split = mirror.hub_split(split)
    only = mirror.text_columns_only
    try:
        src, tgt = _read(mirror.name, hub_split, config.src_lang, config.tgt_lang, only)
    except Exception as error:  # whatever stops the hub read (network, offline, a missing name)
        raise unavailable(mirror, error) from error
    yield from zip(src, tgt, strict=True)


@functools.lru_cache(maxsize=8)
def _read(
    name: str, split: str, src_lang: str, tgt_lang: str, text_columns_only: bool
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Two columns of one hub split, read once per process (tokenizers and ids both need it)."""
    check_reachable(name)
    options = {"columns": [src_lang, tgt_lang]} if text_columns_only else {}
    rows = datasets.load_dataset(name, split=split, streaming=True, **options)
    pairs = [(str(row[src_lang]), str(row[tgt_lang])) for row in rows]
    return tuple(src for src, _ in pairs), tuple(tgt for _, tgt in pairs)


def check_reachable(name: str, *, timeout: float = 10.0) -> None:
    """Raise `ConnectionError` at once in offline mode or when the hub does not answer.

    One request, no retries: `datasets` would retry for about 25 seconds before giving up.
    A local directory (a mirror laid out on disk) needs no network.
    """
    if Path(name).is_dir():
        return
    if offline_mode():
        raise ConnectionError("offline mode is on (HF_HUB_OFFLINE)")
    request = urllib.request.Request(f"{hub_constants.ENDPOINT}/api/datasets/{name}", method="HEAD")
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # the hub answered; `datasets` reports what it said
    except OSError as error:  # URLError: no name resolution, no route, refused; or a timeout
        reason = getattr(error, "reason", error)
        raise ConnectionError(f"{hub_constants.ENDPOINT} cannot be reached: {reason}") from error


def offline_mode() -> bool:
    """Hugging Face's offline switches, read now (the libraries read them once, on import)."""
    switches = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    on = any(value.upper() in {"1", "ON", "YES", "TRUE"} for value in switches)
    return on or bool(hub_constants.HF_HUB_OFFLINE)


def unavailable(mirror: HubMirror, error: BaseException) -> FileNotFoundError:
    """The one-line error: the directory looked for, the dataset tried, why, and what to do."""
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return FileNotFoundError(
        f"no data directory {default_data_dir()} and the hub dataset {mirror.name} could not "
        f"be read ({reason}); set SEQ2SEQ_DATA=DIR to a directory of {{split}}.{{lang}}[.gz] "
        f"files, or allow network access to {hub_constants.ENDPOINT}"
    )
