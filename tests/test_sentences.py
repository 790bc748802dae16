"""Sentence splitting: what is cut, what is kept, and how translations are put back together."""

from pathlib import Path

import pytest

from seq2seq import SearchOptions, Translator
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


def test_outer_whitespace_goes_and_blank_texts_have_no_sentence() -> None:
    segmented = split_sentences(["  Ein Hund.  Eine Katze. \n", "", " \n "], "de")
    assert segmented.sentences == ["Ein Hund.", "Eine Katze."]
    assert segmented.join(["x", "y"]) == ["x  y", "", ""]


def test_a_sentence_ends_only_where_whitespace_follows() -> None:
    text = "Es kostet 1.5 Euro.Das ist viel. Ja?! Gut…"
    segmented = split_sentences([text], "de")
    assert segmented.sentences == ["Es kostet 1.5 Euro.Das ist viel.", "Ja?!", "Gut…"]
    assert segmented.join(["A.", "B!", "C"]) == ["A. B! C"]


@pytest.mark.parametrize("split", [True, False])
def test_text_without_letters_or_digits_is_kept_as_written(split: bool) -> None:
    texts = ["!?.,;:…—«»", " 🐶 ", "Ein Hund. !!! Zwei."]
    segmented = split_sentences(texts, "de") if split else Segmented.whole(texts)
    words = ["Ein Hund.", "Zwei."] if split else ["Ein Hund. !!! Zwei."]
    assert segmented.sentences == words
    translated = ["A dog.", "Two."] if split else ["A dog. !!! Two."]
    assert segmented.join(translated) == ["!?.,;:…—«»", "🐶", "A dog. !!! Two."]


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
    alone = translator.translate(lines, SearchOptions(beam_size=1))
    assert translator.translate(["\n".join(lines)], SearchOptions(beam_size=1)) == [
        "\n".join(alone)
    ]
    whole = translator.translate(
        ["\n".join(lines)], SearchOptions(beam_size=1), split_sentences=False
    )
    assert whole == translator.translate([" ".join(lines)], SearchOptions(beam_size=1))
