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
        """Every text as one sentence (no cutting)."""
        return cls(sentences=list(texts), layout=[[number] for number in range(len(texts))])

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

    A text without any words (empty or whitespace) becomes one empty sentence, so that every
    text is translated by the model as it would be whole.
    """
    sentences: list[str] = []
    layout: list[list[int | str]] = []
    for text in texts:
        pieces: list[int | str] = []
        for piece in _pieces(text.strip(), lang or FALLBACK_LANGUAGE):
            if piece.strip():
                pieces.append(len(sentences))
                sentences.append(piece)
            else:
                pieces.append(piece)
        if not any(isinstance(piece, int) for piece in pieces):
            pieces = [len(sentences)]
            sentences.append("")
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
            pieces += [stripped, sentence[len(stripped) :]]
    return [piece for piece in pieces if piece]
