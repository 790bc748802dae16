"""Sentence splitting: what is cut, what is kept, and how translations are put back together."""

from pathlib import Path

import pytest

from seq2seq import Translator
from seq2seq.sentences import Segmented, split_sentences


def test_cuts_at_sentence_ends_and_line_breaks() -> None:
    text = "Ein Hund läuft. Zwei Katzen schlafen!\n\nWas nun?"
    segmented = split_sentences([text], "de")
    assert segmented.sentences == ["Ein Hund läuft.", "Zwei Katzen schlafen!", "Was nun?"]
    assert segmented.join(segmented.sentences) == [text]
    assert segmented.join(["A.", "B!", "C?"]) == ["A. B!\n\nC?"]


def test_abbreviations_of_the_source_language_do_not_end_a_sentence() -> None:
    text = "Dr. Müller kam z.B. um 3 Uhr an."
    assert split_sentences([text], "de").sentences == [text]


def test_outer_whitespace_goes_and_blank_texts_stay_one_empty_sentence() -> None:
    segmented = split_sentences(["  Ein Hund.  Eine Katze. \n", "", " \n "], "de")
    assert segmented.sentences == ["Ein Hund.", "Eine Katze.", "", ""]
    assert segmented.join(["x", "y", "", ""]) == ["x  y", "", ""]


def test_unknown_language_still_splits() -> None:
    assert split_sentences(["A dog runs. A cat sleeps."], None).sentences == [
        "A dog runs.",
        "A cat sleeps.",
    ]


def test_join_needs_one_translation_per_sentence() -> None:
    segmented = split_sentences(["A dog runs. A cat sleeps."], "en")
    with pytest.raises(ValueError, match="1 translations for 2 sentences"):
        segmented.join(["one"])


def test_whole_keeps_every_text_as_one_sentence() -> None:
    segmented = Segmented.whole(["A. B.", "C"])
    assert segmented.sentences == ["A. B.", "C"]
    assert segmented.join(["x", "y"]) == ["x", "y"]


def test_translator_translates_sentence_by_sentence(tiny_checkpoint_path: Path) -> None:
    translator = Translator.load(tiny_checkpoint_path, device="cpu")
    lines = ["eins zwei drei", "vier fünf", "sechs"]
    alone = translator.translate(lines, beam_size=1)
    assert translator.translate(["\n".join(lines)], beam_size=1) == ["\n".join(alone)]
    whole = translator.translate(["\n".join(lines)], beam_size=1, split_sentences=False)
    assert whole == translator.translate([" ".join(lines)], beam_size=1)
