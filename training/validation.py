"""Validation during training: token loss on the whole split, BLEU/chrF of greedy translations.

BLEU goes through `seq2seq.Translator`, the object the evaluator and the server use, so the
validation BLEU is measured exactly the way the deployed model is.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from seq2seq import SearchOptions, Seq2Seq, TokenizerPair, Translator
from training.batching import Batch, TokenBatchSampler, collate
from training.loss import token_loss
from training.metrics import corpus_scores

MAX_LOG_PPL = 64 * math.log(2)
"""Perplexity is reported up to 2**64: a diverged model's loss must not overflow `exp`."""


class Validator:
    """Holds the validation split: encoded batches for the loss, texts for BLEU."""

    def __init__(
        self,
        dataset: Any,
        tokenizers: TokenizerPair,
        *,
        sentences: int = 0,
        beam_size: int = 1,
        batch_tokens: int = 4000,
    ) -> None:
        self.tokenizers, self.beam_size = tokenizers, beam_size
        lengths = list(zip(map(len, dataset["src_ids"]), map(len, dataset["tgt_ids"]), strict=True))
        sampler = TokenBatchSampler(lengths, batch_tokens=batch_tokens, shuffle=False)
        self.batches = [collate(dataset[i]["src_ids"], dataset[i]["tgt_ids"]) for i in sampler]
        count = len(dataset) if sentences <= 0 else min(sentences, len(dataset))
        self.sources = list(dataset["src"][:count])
        self.references = list(dataset["tgt"][:count])

    @torch.no_grad()
    def loss(self, model: Seq2Seq) -> float:
        """Mean cross-entropy per target token (no label smoothing)."""
        device = next(model.parameters()).device
        total, tokens = 0.0, 0
        for batch in self.batches:
            moved: Batch = batch.to(device)
            total += float(token_loss(model, moved, reduction="sum"))
            tokens += moved.num_tokens
        return total / max(tokens, 1)

    def run(self, model: Seq2Seq) -> dict[str, Any]:
        """Loss and BLEU of `model` (left in train mode afterwards)."""
        started = time.monotonic()
        model.eval()
        try:
            loss = self.loss(model)
            device = next(model.parameters()).device
            translator = Translator(model, self.tokenizers, device=device)
            hypotheses = translator.translate(self.sources, SearchOptions(beam_size=self.beam_size))
        finally:
            model.train()
        scores = corpus_scores(hypotheses, self.references)
        return {
            "val_loss": round(loss, 4),
            "val_ppl": round(math.exp(min(loss, MAX_LOG_PPL)), 2),
            "val_bleu": scores["bleu"],
            "val_chrf": scores["chrf"],
            "val_sentences": scores["sentences"],
            "eval_seconds": round(time.monotonic() - started, 1),
        }
