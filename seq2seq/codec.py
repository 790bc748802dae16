"""`TextCodec`: the text side of a model (tokenizers, languages, metadata) without its weights.

`Translator` is a `TextCodec` with a model. A process that only prepares requests for a model
held elsewhere, such as the server with `inference: process`, loads just this: the weights of
the checkpoint are never read.

The text pipeline, the same for `Translator.translate` and the server: `prepare` cuts texts
into what the model translates (HTML text fragments, then sentences) and encodes them;
the ranked translations of every sentence go back through `Prepared.assemble`, which
rebuilds each text (sentences joined as they were written, markup put back) once per rank.

Over-long input policy (the same everywhere): a text is cut into sentences first (`segment`),
and a sentence longer than `max_input_tokens` source subwords is truncated to that many, with
a warning in the log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seq2seq.checkpoint import load_checkpoint
from seq2seq.ensemble import AnyConfig
from seq2seq.markup import escape, split_html
from seq2seq.search import Hypothesis
from seq2seq.sentences import Segmented, split_sentences
from seq2seq.tokenizer import TokenizerPair

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """Texts made ready for the model: the source ids of their sentences, and the way back."""

    sources: list[list[int]]
    """Source ids of every sentence of every text, in order."""
    fragments: Segmented
    """Texts -> fragments: the text between tags of HTML, else each text whole."""
    sentences: Segmented
    """Fragments -> the sentences that `sources` encode."""
    html: bool

    @property
    def tokens(self) -> int:
        """Source subwords in all: the work this asks of the model."""
        return sum(len(ids) for ids in self.sources)

    def assemble(self, ranked: Sequence[Sequence[str]]) -> list[list[str]]:
        """Per text, its translations best first, from `ranked[i]`, the translations of
        sentence i best first. Candidate r of a text joins candidate r of each of its
        sentences (a sentence with fewer gives its last) and is as long as the longest list."""
        count = max((len(options) for options in ranked), default=1)
        by_rank = [self._text(ranked, rank) for rank in range(max(count, 1))]  # [n, texts]
        return [list(candidates) for candidates in zip(*by_rank, strict=True)]  # [texts, n]

    def _text(self, ranked: Sequence[Sequence[str]], rank: int) -> list[str]:
        pick = [options[min(rank, len(options) - 1)] if options else "" for options in ranked]
        fragments = self.sentences.join(pick)
        return self.fragments.join(escape(fragments) if self.html else fragments)


class TextCodec:
    """Texts to source ids and target ids to texts, for one model's tokenizers."""

    def __init__(
        self,
        tokenizers: TokenizerPair,
        *,
        src_lang: str | None = None,
        tgt_lang: str | None = None,
        metadata: dict[str, Any] | None = None,
        max_input_tokens: int = 256,
        config: AnyConfig | None = None,
        parameters: int = 0,
    ) -> None:
        self.tokenizers = tokenizers
        self.config, self.parameters = config, parameters
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.metadata = dict(metadata or {})
        self.max_input_tokens = max_input_tokens

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextCodec:
        """The tokenizers, languages and metadata of a checkpoint file, without its weights."""
        checkpoint = load_checkpoint(path, weights=False)
        return cls(
            checkpoint.tokenizers,
            src_lang=checkpoint.src_lang,
            tgt_lang=checkpoint.tgt_lang,
            metadata=checkpoint.metadata,
            config=checkpoint.config,
            parameters=checkpoint.parameters,
        )

    def info(self) -> dict[str, Any]:
        """What the model is: languages, sizes, parameter count, training metadata."""
        return {
            "src_lang": self.src_lang,
            "tgt_lang": self.tgt_lang,
            "config": self.config.to_dict() if self.config else {},
            "parameters": self.parameters,
            "metadata": self.metadata,
        }

    def prepare(self, texts: Sequence[str], *, html: bool = False, split: bool = True) -> Prepared:
        """`texts` cut into sentences (HTML: of the text between tags) and encoded."""
        fragments = split_html(texts) if html else Segmented.whole(texts)
        sentences = self.segment(fragments.sentences, split=split)
        return Prepared(self.encode(sentences.sentences), fragments, sentences, html)

    def segment(self, texts: Sequence[str], *, split: bool = True) -> Segmented:
        """`texts` cut at line breaks and sentence ends by the source language's rules, or
        (`split=False`) each kept whole; translate `.sentences`, then `.join` the results."""
        return split_sentences(texts, self.src_lang) if split else Segmented.whole(texts)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Source ids per text, truncated to `max_input_tokens` (with a warning)."""
        sources = self.tokenizers.src.encode([text.strip() for text in texts])
        for number, ids in enumerate(sources):
            if len(ids) > self.max_input_tokens:
                logger.warning(
                    "input %d has %d subwords; truncated to %d",
                    number,
                    len(ids),
                    self.max_input_tokens,
                )
                sources[number] = ids[: self.max_input_tokens]
        return sources

    def decode(self, outputs: Sequence[list[int]]) -> list[str]:
        """Target ids (from a search) -> detokenized text."""
        return self.tokenizers.tgt.decode(list(outputs))

    def decode_ranked(self, ranked: Sequence[Sequence[Hypothesis]]) -> list[list[str]]:
        """Hypotheses of every sentence (best first) -> their texts; none -> one empty text."""
        flat = self.decode([hyp.tokens for hypotheses in ranked for hyp in hypotheses])
        texts: list[list[str]] = []
        for hypotheses in ranked:
            texts.append(flat[: len(hypotheses)] or [""])
            flat = flat[len(hypotheses) :]
        return texts
