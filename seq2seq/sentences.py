"""Cutting texts into sentences before translation, and putting the translations back together.

The model reads one sentence into one fixed-size state, so a paragraph given whole is
translated badly and truncated at `max_input_tokens`. `split_sentences` cuts every text at
line breaks and then at sentence ends (sentencex's rules for the source language); the
sentences of all texts are translated together, and `Segmented.join` rebuilds each text with
its original line breaks and spacing between sentences. A text's outer whitespace is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sentencex import segment

LINE_BREAKS = re.compile(r"(\s*\n\s*)")
"""A line break with the whitespace around it, kept as a separator."""

WORD = re.compile(r"\w")
"""A letter or digit: what makes a piece of text worth translating."""

FALLBACK_LANGUAGE = "en"
"""Sentence rules used when the model does not name its source language."""


@dataclass(frozen=True)
class Segmented:
    """Texts cut into sentences: translate `sentences`, then `join` the translations.

    `layout[i]` lists text i's pieces in order: an int is the index of a sentence, a str is
    whitespace kept between sentences.
    """

    sentences: list[str]
    layout: list[list[int | str]]

    @classmethod
    def whole(cls, texts: Sequence[str]) -> Segmented:
        """Every text as one sentence (no cutting); one without a letter or digit is kept as
        written (outer whitespace dropped), as `split_sentences` keeps it."""
        sentences: list[str] = []
        layout: list[list[int | str]] = []
        for text in texts:
            layout.append([len(sentences)] if WORD.search(text) else [text.strip()])
            sentences += [text] if WORD.search(text) else []
        return cls(sentences=sentences, layout=layout)

    def join(self, translations: Sequence[str]) -> list[str]:
        """One text per input text, from the translations of `sentences` (same order)."""
        if len(translations) != len(self.sentences):
            raise ValueError(
                f"{len(translations)} translations for {len(self.sentences)} sentences"
            )
        return [
            "".join(piece if isinstance(piece, str) else translations[piece] for piece in pieces)
            for pieces in self.layout
        ]


def split_sentences(texts: Sequence[str], lang: str | None) -> Segmented:
    """Cut `texts` at line breaks and sentence ends (rules of language `lang`).

    A sentence is cut off only where whitespace follows its end ("1.5", "?!" and "z.B." stay
    whole). Pieces without a letter or digit (punctuation, symbols, emoji) and empty texts
    are not sentences: they are kept as written rather than given to the model, which would
    make up a translation.
    """
    sentences: list[str] = []
    layout: list[list[int | str]] = []
    for text in texts:
        pieces: list[int | str] = []
        for piece in _pieces(text.strip(), lang or FALLBACK_LANGUAGE):
            if WORD.search(piece):
                pieces.append(len(sentences))
                sentences.append(piece)
            else:
                pieces.append(piece)
        layout.append(pieces)
    return Segmented(sentences=sentences, layout=layout)


def _pieces(text: str, lang: str) -> list[str]:
    """Sentences (stripped) and the whitespace between them, in order."""
    pieces: list[str] = []
    for line in LINE_BREAKS.split(text):
        if not line.strip():
            pieces.append(line)
            continue
        for sentence in segment(lang, line):
            stripped = sentence.rstrip()
            if pieces and pieces[-1].strip() and not sentence[:1].isspace() and stripped:
                pieces[-1] += stripped  # no whitespace before it: not a new sentence
            else:
                pieces.append(stripped)
            if sentence[len(stripped) :]:
                pieces.append(sentence[len(stripped) :])
    return [piece for piece in pieces if piece]
