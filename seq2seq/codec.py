"""`TextCodec`: the text side of a model (tokenizers, languages, metadata) without its weights.

`Translator` is a `TextCodec` with a model. A process that only prepares requests for a model
held elsewhere, such as the server with `inference: process`, loads just this: the weights of
the checkpoint are never read.

Over-long input policy (the same everywhere): a text is cut into sentences first (`segment`),
and a sentence longer than `max_input_tokens` source subwords is truncated to that many, with
a warning in the log.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from seq2seq.checkpoint import load_checkpoint
from seq2seq.sentences import Segmented, split_sentences
from seq2seq.tokenizer import TokenizerPair

logger = logging.getLogger(__name__)


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
    ) -> None:
        self.tokenizers = tokenizers
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
        )

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
