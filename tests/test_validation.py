"""Validation during training: loss over every batch of the split, BLEU through `Translator`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import number_pairs
from datasets import Dataset

from seq2seq import SearchOptions, Seq2Seq, TokenizerPair, Translator, load_checkpoint
from training.batching import collate
from training.loss import token_loss
from training.metrics import corpus_scores
from training.validation import Validator


def split(tokenizers: TokenizerPair, count: int) -> Dataset:
    """`count` number-word pairs with the columns the training data has."""
    pairs = number_pairs(count, seed=5)
    src, tgt = [s for s, _ in pairs], [t for _, t in pairs]
    columns = {"src": src, "tgt": tgt}
    ids = {"src_ids": tokenizers.src.encode(src), "tgt_ids": tokenizers.tgt.encode(tgt)}
    return Dataset.from_dict({**columns, **ids})


@pytest.fixture(scope="module")
def trained(tiny_checkpoint_path: Path) -> tuple[Seq2Seq, TokenizerPair]:
    checkpoint = load_checkpoint(tiny_checkpoint_path)
    return checkpoint.build_model(), checkpoint.tokenizers


def test_loss_is_the_mean_over_every_target_token_of_the_split(
    trained: tuple[Seq2Seq, TokenizerPair],
) -> None:
    model, tokenizers = trained
    data = split(tokenizers, 40)
    validator = Validator(data, tokenizers, batch_tokens=60)  # several small batches
    assert len(validator.batches) > 1
    model.eval()
    whole = collate(data["src_ids"], data["tgt_ids"])  # one batch: the plain definition
    with torch.no_grad():
        expected = float(token_loss(model, whole))
    assert validator.loss(model) == pytest.approx(expected, rel=1e-5)


def test_run_scores_greedy_translations_of_the_first_sentences_and_restores_train_mode(
    trained: tuple[Seq2Seq, TokenizerPair],
) -> None:
    model, tokenizers = trained
    data = split(tokenizers, 30)
    validator = Validator(data, tokenizers, sentences=12)
    model.train()
    record = validator.run(model)
    assert model.training
    assert record["val_sentences"] == 12 and 0.0 < record["val_bleu"] <= 100.0
    assert record["val_ppl"] == pytest.approx(math.exp(record["val_loss"]), abs=0.01)
    hypotheses = Translator(model, tokenizers, device="cpu").translate(
        data["src"][:12], SearchOptions(beam_size=1)
    )
    model.train()
    assert record["val_bleu"] == corpus_scores(hypotheses, data["tgt"][:12])["bleu"]


def test_a_diverged_model_gets_a_capped_perplexity_not_an_error(
    trained: tuple[Seq2Seq, TokenizerPair], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizers = trained
    validator = Validator(split(tokenizers, 8), tokenizers)
    monkeypatch.setattr(Validator, "loss", lambda self, model: 1000.0)
    record = validator.run(model)
    assert record["val_loss"] == 1000.0 and record["val_ppl"] == pytest.approx(2.0**64)
