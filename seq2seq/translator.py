"""`Translator`: text in, text out. The CLI, the evaluator and the server all translate through it.

It is a `TextCodec` (tokenizers, languages, the over-long input policy) with a model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from seq2seq.checkpoint import Checkpoint, load_checkpoint
from seq2seq.codec import TextCodec
from seq2seq.continuous import GreedyStream
from seq2seq.introspect import MAX_TOKENS, Inspection, inspect_sentence
from seq2seq.model import Seq2Seq
from seq2seq.precision import Precision, check_precision, convert
from seq2seq.search import Hypothesis, beam_search, greedy_search, max_lengths, pad_sources
from seq2seq.tokenizer import TokenizerPair


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' is CUDA when available, else CPU; anything else is taken as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available")
    return resolved


@dataclass(frozen=True)
class SearchOptions:
    """How to decode: beam width, length normalisation and the output length limit."""

    beam_size: int = 5
    length_penalty: float = 1.0
    max_length_a: float = 1.5
    max_length_b: int = 10
    max_length: int = 256

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {self.beam_size}")
        if self.max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {self.max_length}")


class Translator(TextCodec):
    """A loaded model with its tokenizers, translating batches of sentences."""

    def __init__(
        self,
        model: Seq2Seq,
        tokenizers: TokenizerPair,
        *,
        device: str | torch.device = "auto",
        src_lang: str | None = None,
        tgt_lang: str | None = None,
        metadata: dict[str, Any] | None = None,
        max_input_tokens: int = 256,
        precision: Precision = "fp32",
    ) -> None:
        super().__init__(
            tokenizers,
            src_lang=src_lang,
            tgt_lang=tgt_lang,
            metadata=metadata,
            max_input_tokens=max_input_tokens,
        )
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        self.precision = precision
        self.model = convert(model.to(self.device).eval(), precision, self.device)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        precision: Precision = "fp32",
    ) -> Translator:
        """Load a checkpoint file (raises `CheckpointError` with a one-line reason).

        `precision` is "fp32", "bf16" or "int8" (CPU only); see `seq2seq.precision`.
        """
        return cls.from_checkpoint(load_checkpoint(path), device=device, precision=precision)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Checkpoint,
        device: str | torch.device = "auto",
        precision: Precision = "fp32",
    ) -> Translator:
        """Wrap an in-memory checkpoint, as training does for validation."""
        return cls(
            checkpoint.build_model(),
            checkpoint.tokenizers,
            device=device,
            precision=precision,
            src_lang=checkpoint.src_lang,
            tgt_lang=checkpoint.tgt_lang,
            metadata=checkpoint.metadata,
        )

    def translate(
        self,
        texts: Sequence[str],
        *,
        beam_size: int = 5,
        batch_size: int = 128,
        batch_tokens: int = 6000,
        split_sentences: bool = True,
        **options: Any,
    ) -> list[str]:
        """Translate `texts`, returned in input order; empty input gives an empty string.

        Each text is cut into sentences (at line breaks and sentence ends; `split_sentences`
        False keeps it whole), and the translations are joined with the text's line breaks.
        Sentences are sorted by length into batches of at most `batch_size` sentences and
        `batch_tokens` padded source tokens (beams included). `options` are the other
        `SearchOptions` fields (length_penalty, max_length_a, max_length_b, max_length).
        """
        segmented = self.segment(texts, split=split_sentences)
        translations = self.translate_ids(
            self.encode(segmented.sentences),
            beam_size=beam_size,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            **options,
        )
        return segmented.join(translations)

    def translate_ids(
        self,
        sources: Sequence[list[int]],
        *,
        beam_size: int = 5,
        batch_size: int = 128,
        batch_tokens: int = 6000,
        **options: Any,
    ) -> list[str]:
        """`translate` for texts already turned into ids by `encode` (the server counts a
        request's tokens that way before batching it, and does not encode twice)."""
        best = self.nbest_ids(
            sources,
            beam_size=beam_size,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            **options,
        )
        return self.decode([hyps[0].tokens if hyps else [] for hyps in best])

    def translate_nbest(
        self,
        texts: Sequence[str],
        *,
        n_best: int = 1,
        batch_size: int = 128,
        batch_tokens: int = 6000,
        **options: Any,
    ) -> list[list[Hypothesis]]:
        """Up to `n_best` hypotheses per text, best first (empty list for empty input)."""
        return self.nbest_ids(
            self.encode(texts),
            n_best=n_best,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
            **options,
        )

    def nbest_ids(
        self,
        sources: Sequence[list[int]],
        *,
        n_best: int = 1,
        batch_size: int = 128,
        batch_tokens: int = 6000,
        **options: Any,
    ) -> list[list[Hypothesis]]:
        """`translate_nbest` for sources from `encode`."""
        search = SearchOptions(**options)
        results: list[list[Hypothesis]] = [[] for _ in sources]
        budget = max(1, batch_tokens // search.beam_size)
        for indices in _length_batches(sources, batch_size=batch_size, batch_tokens=budget):
            batch = [sources[i] for i in indices]
            for index, hyps in zip(indices, self._search(batch, search, n_best), strict=True):
                results[index] = hyps
        return results

    def greedy_stream(self, **options: Any) -> GreedyStream[Any]:
        """A running greedy batch that sentences (ids from `encode`) join at any step; see
        `seq2seq.continuous`. `options` are the length fields of `SearchOptions`."""
        search = SearchOptions(beam_size=1, **options)
        return GreedyStream(
            self.model,
            device=self.device,
            max_length_a=search.max_length_a,
            max_length_b=search.max_length_b,
            max_length=search.max_length,
        )

    def _search(
        self, batch: list[list[int]], search: SearchOptions, n_best: int
    ) -> list[list[Hypothesis]]:
        src, src_len = pad_sources(batch, self.device)
        max_len = max_lengths(
            src_len, a=search.max_length_a, b=search.max_length_b, cap=search.max_length
        )
        if search.beam_size == 1 and n_best == 1:
            outputs = greedy_search(self.model, src, src_len, max_len=max_len)
            return [[Hypothesis(ids, 0.0)] for ids in outputs]
        return beam_search(
            self.model,
            src,
            src_len,
            max_len=max_len,
            beam_size=search.beam_size,
            length_penalty=search.length_penalty,
            n_best=n_best,
        )

    def info(self) -> dict[str, Any]:
        """What the model is: languages, sizes, parameter count, device, training metadata."""
        return {
            "src_lang": self.src_lang,
            "tgt_lang": self.tgt_lang,
            "config": self.model.config.to_dict(),
            "parameters": self.model.num_parameters(),
            "device": str(self.device),
            "precision": self.precision,
            "metadata": self.metadata,
        }

    def inspect(
        self,
        text: str,
        *,
        beam_size: int = 1,
        top_k: int = 5,
        max_tokens: int = MAX_TOKENS,
        **options: Any,
    ) -> Inspection:
        """Every layer's gates, cell and hidden state for `text`, read as one sentence, and
        the decoder's choices with their `top_k` alternatives; see `seq2seq.introspect`.
        The translation is `translate([text], beam_size=..., split_sentences=False)`'s.
        `options` are the other `SearchOptions` fields. `ValueError` for empty text or more
        than `max_tokens` source subwords."""
        search = SearchOptions(beam_size=beam_size, **options)
        return inspect_sentence(self, text, search=search, top_k=top_k, max_tokens=max_tokens)


def _length_batches(
    sources: Sequence[list[int]], *, batch_size: int, batch_tokens: int
) -> Iterator[list[int]]:
    """Indices of non-empty sources, longest first, in batches bounded by sentences and tokens."""
    order = sorted((i for i, ids in enumerate(sources) if ids), key=lambda i: -len(sources[i]))
    batch: list[int] = []
    for index in order:
        longest = len(sources[batch[0]]) if batch else len(sources[index])
        full = len(batch) >= batch_size or longest * (len(batch) + 1) > batch_tokens
        if batch and full:
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch
