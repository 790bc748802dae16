"""Language detection among the languages a server reads: right on Multi30k's test sentences,
never a language it does not read, certain when it reads one."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from serve.detect import Detector

DATA = Path(os.environ.get("SEQ2SEQ_DATA") or Path(__file__).parents[2] / "shared/data/multi30k")
SAMPLE = {
    "en": "A man in a blue shirt is standing on a ladder cleaning windows.",
    "de": "Ein Mann in einem blauen Hemd steht auf einer Leiter und putzt Fenster.",
    "fr": "Un homme en chemise bleue est debout sur une échelle et nettoie des vitres.",
    "cs": "Muž v modré košili stojí na žebříku a myje okna.",
}


def test_each_served_language_is_recognised() -> None:
    detector = Detector(SAMPLE)
    for language, text in SAMPLE.items():
        found = detector.detect(text)
        assert found is not None and found.language == language and found.confidence > 90


def test_only_served_languages_are_answered() -> None:
    detector = Detector(["de", "fr"])
    assert {found.language for found in detector.rank(SAMPLE["en"])} == {"de", "fr"}
    assert Detector(["de"]).rank(SAMPLE["fr"]) == [Detector(["de"]).detect("x")]
    assert Detector(["de"]).detect(SAMPLE["fr"]).confidence == 100.0  # type: ignore[union-attr]


def test_languages_it_cannot_detect_are_left_out() -> None:
    assert Detector(["de", "xx-unknown"]).languages == ["de"]
    assert Detector([]).detect("eins") is None


@pytest.mark.skipif(not (DATA / "test_2016_flickr.cs.gz").exists(), reason=f"no Multi30k in {DATA}")
def test_at_least_99_percent_on_a_multi30k_sample() -> None:
    detector = Detector(SAMPLE)
    right = total = 0
    for language in SAMPLE:
        with gzip.open(DATA / f"test_2016_flickr.{language}.gz", "rt", encoding="utf-8") as lines:
            for line in list(lines)[:250]:
                found = detector.detect(line.strip())
                right += found is not None and found.language == language
                total += 1
    assert right / total >= 0.99
