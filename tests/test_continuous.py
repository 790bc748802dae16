"""Continuous greedy decoding: joining a running batch at any step changes no sentence."""

from pathlib import Path

import pytest
import torch
from conftest import number_pairs, random_batch, random_model

from seq2seq import Translator, load_checkpoint
from seq2seq.continuous import Finished, GreedyStream
from seq2seq.search import greedy_search, max_lengths

SOURCES = [s for s, _ in number_pairs(24, seed=7, max_words=7)]


def sources_of(src: torch.Tensor, src_len: torch.Tensor) -> list[list[int]]:
    return [row[:length].tolist() for row, length in zip(src, src_len.tolist(), strict=True)]


def run_until_empty(stream: GreedyStream[int], done: dict[int, list[int]]) -> None:
    while len(stream):
        done.update((item.key, item.tokens) for item in stream.step())


@pytest.mark.parametrize("seed", range(4))
def test_sentences_admitted_at_different_steps_match_greedy_search(seed: int) -> None:
    model, (src, src_len) = random_model(seed, eos_bias=1.0), random_batch(seed, size=16)
    expected = greedy_search(model, src, src_len, max_len=max_lengths(src_len, a=1.5, b=3, cap=20))
    stream: GreedyStream[int] = GreedyStream(
        model, device=torch.device("cpu"), max_length_a=1.5, max_length_b=3, max_length=20
    )
    sources, done = sources_of(src, src_len), {}
    for start in range(0, 16, 3):  # three newcomers before every step
        stream.admit(range(start, min(start + 3, 16)), sources[start : start + 3])
        done.update((item.key, item.tokens) for item in stream.step())
    run_until_empty(stream, done)
    assert [done[number] for number in range(16)] == expected


def test_the_length_cap_holds_and_empty_sources_finish_at_once() -> None:
    model, (src, src_len) = random_model(1, eos_bias=-50.0), random_batch(1, size=4)
    stream: GreedyStream[str] = GreedyStream(
        model, device=torch.device("cpu"), max_length_a=1.0, max_length_b=2, max_length=5
    )
    immediate = stream.admit(["empty", "a", "b"], [[], *sources_of(src, src_len)[:2]])
    assert immediate == [Finished("empty", [])]
    lengths: dict[str, int] = {}
    while len(stream):
        lengths.update((item.key, len(item.tokens)) for item in stream.step())
    caps = max_lengths(src_len[:2], a=1.0, b=2, cap=5).tolist()
    assert lengths == {"a": caps[0], "b": caps[1]}


def test_removed_sentences_leave_and_the_rest_are_unchanged() -> None:
    model, (src, src_len) = random_model(2, eos_bias=-50.0), random_batch(2, size=6)
    sources = sources_of(src, src_len)
    stream: GreedyStream[int] = GreedyStream(model, device=torch.device("cpu"), max_length=12)
    stream.admit(range(6), sources)
    stream.step()
    stream.remove({0, 3})
    assert stream.keys == [1, 2, 4, 5]
    done: dict[int, list[int]] = {}
    run_until_empty(stream, done)
    alone: GreedyStream[int] = GreedyStream(model, device=torch.device("cpu"), max_length=12)
    alone.admit([4], [sources[4]])
    single: dict[int, list[int]] = {}
    run_until_empty(alone, single)
    assert set(done) == {1, 2, 4, 5} and done[4] == single[4]
    stream.admit([9], [sources[0]])
    stream.clear()
    assert len(stream) == 0 and stream.step() == []


def test_a_trained_model_streams_the_same_translations(tiny_checkpoint_path: Path) -> None:
    translator = Translator.from_checkpoint(load_checkpoint(tiny_checkpoint_path), device="cpu")
    stream = translator.greedy_stream()
    ids = translator.encode(SOURCES)
    done: dict[int, list[int]] = {}
    for number, source in enumerate(ids):
        stream.admit([number], [source])
        done.update((item.key, item.tokens) for item in stream.step())
    run_until_empty(stream, done)
    streamed = translator.decode([done[number] for number in range(len(SOURCES))])
    assert streamed == translator.translate(SOURCES, beam_size=1)
