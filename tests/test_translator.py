"""Translator: order, empty input, truncation policy, batching limits, real translations."""

import logging
from pathlib import Path

import pytest
import torch
from conftest import number_pairs

from seq2seq import SearchOptions, Translator
from seq2seq.translator import resolve_device


@pytest.fixture(scope="module")
def translator(tiny_checkpoint_path: Path) -> Translator:
    return Translator.load(tiny_checkpoint_path, device="cpu")


def test_translates_the_number_language(translator: Translator) -> None:
    pairs = number_pairs(200, seed=11)
    outputs = translator.translate([s for s, _ in pairs], SearchOptions(beam_size=5))
    exact = sum(out == ref for out, (_, ref) in zip(outputs, pairs, strict=True)) / len(pairs)
    assert exact >= 0.7


def test_keeps_input_order_and_empty_inputs(translator: Translator) -> None:
    texts = ["eins zwei drei vier", "", "fünf", "   ", "sechs sieben"]
    outputs = translator.translate(texts, SearchOptions(beam_size=2))
    assert outputs[1] == outputs[3] == ""
    assert outputs[0] == translator.translate([texts[0]], SearchOptions(beam_size=2))[0]
    assert outputs[2] == translator.translate([texts[2]], SearchOptions(beam_size=2))[0]
    assert translator.translate([]) == []


@pytest.mark.parametrize("beam_size", [1, 3])
def test_encoded_sources_translate_like_their_texts(translator: Translator, beam_size: int) -> None:
    texts = [s for s, _ in number_pairs(20, seed=13)] + [""]
    sources = translator.encode(texts)
    assert sources[-1] == [] and all(sources[:-1])
    options = SearchOptions(beam_size=beam_size, n_best=beam_size)
    expected = translator.translate_ranked(texts[:-1], options, split_sentences=False)
    ranked = translator.translate_ids(sources, options)
    assert ranked[:-1] == expected and ranked[-1] == [""]
    best = translator.search(sources, options)
    assert [translator.decode([h.tokens for h in hyps]) for hyps in best[:-1]] == expected
    assert best[-1] == []


@pytest.mark.parametrize(("batch_size", "batch_tokens"), [(1, 6000), (3, 6000), (128, 10)])
def test_batching_limits_do_not_change_output(
    translator: Translator, batch_size: int, batch_tokens: int
) -> None:
    texts = [s for s, _ in number_pairs(30, seed=12)]
    expected = translator.translate(texts, SearchOptions(beam_size=3))
    got = translator.translate(
        texts, SearchOptions(beam_size=3), batch_size=batch_size, batch_tokens=batch_tokens
    )
    assert got == expected


def test_over_long_input_is_truncated_with_a_warning(
    translator: Translator, caplog: pytest.LogCaptureFixture
) -> None:
    translator.max_input_tokens = 8
    try:
        with caplog.at_level(logging.WARNING, logger="seq2seq.codec"):
            ids = translator.encode(["eins " * 50])
    finally:
        translator.max_input_tokens = 256
    assert len(ids[0]) == 8
    assert "truncated to 8" in caplog.text


def test_max_length_caps_the_output(translator: Translator) -> None:
    options = SearchOptions(beam_size=1, max_length=2)
    output = translator.search(translator.encode(["eins zwei drei vier fünf"]), options)
    assert len(output[0][0].tokens) <= 2


def test_search_options_are_checked() -> None:
    with pytest.raises(ValueError, match="beam_size"):
        SearchOptions(beam_size=0)


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_info_describes_the_model(translator: Translator) -> None:
    info = translator.info()
    assert info["src_lang"] == "de" and info["tgt_lang"] == "en"
    assert info["parameters"] == sum(p.numel() for p in translator.model.parameters())
    assert info["config"]["hidden_size"] == 64
