"""`Translator`: text in, text out. The CLI, the evaluator and the server all translate through it.

It is a `TextCodec` (tokenizers, languages, the text pipeline) with a model: one `Seq2Seq`,
or an `Ensemble` of them (`Translator.load_ensemble`, or a checkpoint that holds one). How to
search is one `SearchOptions`; how many sentences run together is `batch_size` and
`batch_tokens`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from seq2seq.checkpoint import Checkpoint, load_checkpoint, load_joined
from seq2seq.codec import TextCodec
from seq2seq.ensemble import Ensemble
from seq2seq.introspect import MAX_TOKENS, Inspection, inspect_sentence
from seq2seq.model import Seq2Seq
from seq2seq.precision import Precision, check_precision, convert
from seq2seq.search import (
    Decodable,
    Hypothesis,
    SearchOptions,
    StopFn,
    beam_search,
    greedy_search,
    max_lengths,
    pad_sources,
)
from seq2seq.shortlist import Shortlist, Shortlisted, output_weights
from seq2seq.tokenizer import TokenizerPair

DEFAULT_SEARCH = SearchOptions()
"""Beam 5, one translation per text."""
GREEDY_SEARCH = SearchOptions(beam_size=1)
SHORTLIST_BATCH = 64
"""Sentences a batch at most with a shortlist: each one widens the batch's list of pieces."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' is CUDA when available, else CPU; anything else is taken as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available")
    return resolved


class Translator(TextCodec):
    """A loaded model with its tokenizers, translating batches of sentences."""

    def __init__(
        self,
        model: Seq2Seq | Ensemble,
        tokenizers: TokenizerPair,
        *,
        device: str | torch.device = "auto",
        src_lang: str | None = None,
        tgt_lang: str | None = None,
        metadata: dict[str, Any] | None = None,
        max_input_tokens: int = 256,
        precision: Precision = "fp32",
        shortlist: Shortlist | None = None,
    ) -> None:
        super().__init__(
            tokenizers,
            src_lang=src_lang,
            tgt_lang=tgt_lang,
            metadata=metadata,
            max_input_tokens=max_input_tokens,
            config=model.config,
            parameters=model.num_parameters(),
        )
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        self.precision = precision
        self.model = convert(model.to(self.device).eval(), precision, self.device)
        self.shortlist = shortlist
        self._output_weights = output_weights(self.model) if shortlist is not None else []

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        device: str | torch.device = "auto",
        precision: Precision = "fp32",
        shortlist: bool = False,
    ) -> Translator:
        """Load a checkpoint file (raises `CheckpointError` with a one-line reason).

        `precision` is "fp32", "bf16" or "int8" (CPU only); see `seq2seq.precision`.
        `shortlist` decodes through the checkpoint's shortlist (`seq2seq.shortlist`).
        """
        checkpoint = load_checkpoint(path)
        return cls.from_checkpoint(
            checkpoint, device=device, precision=precision, shortlist=shortlist
        )

    @classmethod
    def load_ensemble(
        cls,
        paths: Sequence[str | os.PathLike[str]],
        device: str | torch.device = "auto",
        precision: Precision = "fp32",
        shortlist: bool = False,
    ) -> Translator:
        """The ensemble of the checkpoint files `paths` (one path: that model alone), which must
        share their tokenizers; `CheckpointError` or `ValueError` with a one-line reason.
        Every step averages the models' log-probabilities (`seq2seq.ensemble`)."""
        checkpoint = load_joined(paths)
        return cls.from_checkpoint(
            checkpoint, device=device, precision=precision, shortlist=shortlist
        )

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: Checkpoint,
        device: str | torch.device = "auto",
        precision: Precision = "fp32",
        shortlist: bool = False,
    ) -> Translator:
        """Wrap an in-memory checkpoint, as training does for validation; `shortlist` uses its
        shortlist (`ValueError` if it has none)."""
        if shortlist and checkpoint.shortlist is None:
            raise ValueError("this checkpoint has no shortlist: add one with `seq2seq shortlist`")
        return cls(
            checkpoint.build_model(),
            checkpoint.tokenizers,
            device=device,
            precision=precision,
            src_lang=checkpoint.src_lang,
            tgt_lang=checkpoint.tgt_lang,
            metadata=checkpoint.metadata,
            shortlist=checkpoint.shortlist if shortlist else None,
        )

    def translate(
        self,
        texts: Sequence[str],
        options: SearchOptions = DEFAULT_SEARCH,
        *,
        html: bool = False,
        split_sentences: bool = True,
        batch_size: int = 128,
        batch_tokens: int = 6000,
    ) -> list[str]:
        """Translate `texts`, returned in input order; a text without words comes back as is.

        Each text is cut into sentences (at line breaks and sentence ends; `split_sentences`
        False keeps it whole), and the translations are joined as the text was written;
        `html` translates only the text between tags. Sentences are sorted by length into
        batches of at most `batch_size` sentences and `batch_tokens` padded source tokens
        (beams included).
        """
        ranked = self.translate_ranked(
            texts,
            options,
            html=html,
            split_sentences=split_sentences,
            batch_size=batch_size,
            batch_tokens=batch_tokens,
        )
        return [candidates[0] for candidates in ranked]

    def translate_ranked(
        self,
        texts: Sequence[str],
        options: SearchOptions,
        *,
        html: bool = False,
        split_sentences: bool = True,
        batch_size: int = 128,
        batch_tokens: int = 6000,
    ) -> list[list[str]]:
        """`translate`, with up to `options.n_best` translations of each text, best first."""
        prepared = self.prepare(texts, html=html, split=split_sentences)
        ranked = self.translate_ids(
            prepared.sources, options, batch_size=batch_size, batch_tokens=batch_tokens
        )
        return prepared.assemble(ranked)

    def translate_ids(
        self,
        sources: Sequence[list[int]],
        options: SearchOptions,
        *,
        batch_size: int = 128,
        batch_tokens: int = 6000,
        stop: StopFn | None = None,
    ) -> list[list[str]]:
        """The texts of `search`: up to `n_best` per source, best first ([""] for an empty
        source). The server sends ids this way (from `prepare`) and assembles the texts."""
        hypotheses = self.search(
            sources, options, batch_size=batch_size, batch_tokens=batch_tokens, stop=stop
        )
        return self.decode_ranked(hypotheses)

    def search(
        self,
        sources: Sequence[list[int]],
        options: SearchOptions,
        *,
        batch_size: int = 128,
        batch_tokens: int = 6000,
        stop: StopFn | None = None,
    ) -> list[list[Hypothesis]]:
        """Up to `options.n_best` hypotheses per source (ids from `encode`), best first; none
        for an empty source. `stop` returning True ends the search early (results cut short)."""
        results: list[list[Hypothesis]] = [[] for _ in sources]
        if self.shortlist is not None:  # every sentence widens its batch's list
            batch_size = min(batch_size, SHORTLIST_BATCH)
        budget = max(1, batch_tokens // options.beam_size)
        for indices in length_batches(sources, batch_size=batch_size, batch_tokens=budget):
            if stop is not None and stop():
                break
            batch = [sources[i] for i in indices]
            for index, hyps in zip(indices, self._search(batch, options, stop), strict=True):
                results[index] = hyps
        return results

    def _search(
        self, batch: list[list[int]], options: SearchOptions, stop: StopFn | None
    ) -> list[list[Hypothesis]]:
        src, src_len = pad_sources(batch, self.device)  # [B, S], [B]
        max_len = max_lengths(
            src_len, a=options.max_length_a, b=options.max_length_b, cap=options.max_length
        )  # [B]
        model, columns = self._restricted(batch)
        if options.beam_size == 1:  # greedy: its score is not computed
            outputs = greedy_search(
                model, src, src_len, max_len=max_len, stop=stop, columns=columns
            )
            return [[Hypothesis(ids, 0.0)] for ids in outputs]
        return beam_search(
            model,
            src,
            src_len,
            max_len=max_len,
            beam_size=options.beam_size,
            length_penalty=options.length_penalty,
            n_best=options.n_best,
            finish=options.finish,
            stop=stop,
            columns=columns,
        )

    def _restricted(self, batch: list[list[int]]) -> tuple[Decodable, Tensor | None]:
        """The model to search `batch` with: shortlisted to the batch's list, or the whole."""
        if self.shortlist is None:
            return self.model, None
        shortlisted = Shortlisted(self.model, self._output_weights, self.shortlist.vocab(batch))
        return shortlisted, shortlisted.vocab

    def info(self) -> dict[str, Any]:
        """`TextCodec.info`, with the device and precision the model decodes at, and whether
        through a shortlist."""
        return {
            **super().info(),
            "device": str(self.device),
            "precision": self.precision,
            "shortlist": self.shortlist is not None,
        }

    def inspect(
        self,
        text: str,
        options: SearchOptions = GREEDY_SEARCH,
        *,
        top_k: int = 5,
        max_tokens: int = MAX_TOKENS,
    ) -> Inspection:
        """Every layer's gates, cell and hidden state for `text`, read as one sentence, and
        the decoder's choices with their `top_k` alternatives; see `seq2seq.introspect`.
        The translation is `translate([text], options, split_sentences=False)`'s (greedy
        unless `options` say otherwise). `ValueError` for empty text or more than
        `max_tokens` source subwords."""
        return inspect_sentence(self, text, search=options, top_k=top_k, max_tokens=max_tokens)


def length_batches(
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
