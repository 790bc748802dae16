"""Greedy and beam search: beam 1 is greedy, END stops, the cap holds, batches don't matter."""

from pathlib import Path

import pytest
import torch
from conftest import number_pairs, random_batch, random_model

from seq2seq import EOS_ID, SearchOptions, Translator, load_checkpoint
from seq2seq.search import _candidates, beam_search, greedy_search, max_lengths

SOURCES = [s for s, _ in number_pairs(40, seed=5, max_words=7)]


@pytest.fixture(scope="module")
def translator(tiny_checkpoint_path: Path) -> Translator:
    return Translator.from_checkpoint(load_checkpoint(tiny_checkpoint_path), device="cpu")


@pytest.mark.parametrize("seed", range(5))
def test_beam_of_one_is_greedy_on_random_models(seed: int) -> None:
    model, (src, src_len) = random_model(seed, eos_bias=2.0), random_batch(seed)
    max_len = max_lengths(src_len, a=1.5, b=3, cap=20)
    greedy = greedy_search(model, src, src_len, max_len=max_len)
    beam = beam_search(model, src, src_len, max_len=max_len, beam_size=1)
    assert [hyps[0].tokens for hyps in beam] == greedy


def test_beam_of_one_is_greedy_on_a_trained_model(translator: Translator) -> None:
    greedy = translator.translate(SOURCES, SearchOptions(beam_size=1))
    beam = translator.search(translator.encode(SOURCES), SearchOptions(beam_size=1))
    assert translator.tokenizers.tgt.decode([hyps[0].tokens for hyps in beam]) == greedy


def test_end_token_stops_generation() -> None:
    model, (src, src_len) = random_model(0, eos_bias=50.0), random_batch(0)
    max_len = torch.full_like(src_len, 10)
    assert greedy_search(model, src, src_len, max_len=max_len) == [[]] * len(src)
    beams = beam_search(model, src, src_len, max_len=max_len, beam_size=3, n_best=3)
    for hyps in beams:  # the empty translation, then two that end one token later
        assert [len(hyp.tokens) for hyp in hyps] == [0, 1, 1]
        assert hyps[0].score > hyps[1].score >= hyps[2].score


@pytest.mark.parametrize("beam_size", [1, 4])
def test_length_cap_holds_when_end_never_comes(beam_size: int) -> None:
    model, (src, src_len) = random_model(1, eos_bias=-1e4), random_batch(1)
    max_len = max_lengths(src_len, a=1.0, b=2, cap=7)
    beams = beam_search(model, src, src_len, max_len=max_len, beam_size=beam_size, n_best=1)
    assert [len(hyps[0].tokens) for hyps in beams] == max_len.tolist()
    greedy = greedy_search(model, src, src_len, max_len=max_len)
    assert [len(tokens) for tokens in greedy] == max_len.tolist()


def test_hypotheses_never_contain_end(translator: Translator) -> None:
    options = SearchOptions(beam_size=4, n_best=3)
    for hyps in translator.search(translator.encode(SOURCES), options):
        assert len(hyps) == 3 and len({tuple(hyp.tokens) for hyp in hyps}) == 3
        assert all(EOS_ID not in hyp.tokens for hyp in hyps)
        scores = [hyp.score for hyp in hyps]
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("beam_size", [1, 5])
def test_output_does_not_depend_on_batch_composition(
    translator: Translator, beam_size: int
) -> None:
    together = translator.translate(SOURCES, SearchOptions(beam_size=beam_size))
    alone = [
        translator.translate([text], SearchOptions(beam_size=beam_size))[0] for text in SOURCES
    ]
    shuffled_order = list(reversed(range(len(SOURCES))))
    shuffled = translator.translate(
        [SOURCES[i] for i in shuffled_order], SearchOptions(beam_size=beam_size)
    )
    assert together == alone
    assert [shuffled[shuffled_order.index(i)] for i in range(len(SOURCES))] == together


def test_max_lengths_formula() -> None:
    limits = max_lengths(torch.tensor([1, 4, 100]), a=1.5, b=2, cap=50)
    assert limits.tolist() == [4, 8, 50]


def test_n_best_cannot_exceed_beam() -> None:
    model, (src, src_len) = random_model(0), random_batch(0)
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, src, src_len, max_len=torch.full_like(src_len, 3), beam_size=2, n_best=3)


@pytest.mark.parametrize(("beam_size", "vocab"), [(1, 30), (4, 50), (5, 7)])
def test_candidates_match_scoring_every_beam_and_token(beam_size: int, vocab: int) -> None:
    """The per-beam shortcut picks exactly what a log-softmax over all K * V candidates picks."""
    generator = torch.Generator().manual_seed(beam_size * vocab)
    logits = torch.randn(3 * beam_size, vocab, generator=generator) * 4  # [b*K, V]
    scores = torch.randn(3, beam_size, generator=generator)  # [b, K]
    scores[0, 1:] = -torch.inf  # a first step: one live beam per sentence
    count = 2 * beam_size
    total = scores.unsqueeze(2) + logits.log_softmax(-1).view(3, beam_size, vocab)  # [b, K, V]
    expected, index = total.view(3, -1).topk(count, dim=1)  # [b, 2K]
    best, origin, token = _candidates(logits, scores, count)
    finite = expected > -torch.inf
    assert torch.allclose(best[finite], expected[finite], atol=1e-5)
    assert torch.equal(origin[finite], (index // vocab)[finite])
    assert torch.equal(token[finite], (index % vocab)[finite])


def _counting(model: torch.nn.Module) -> list[int]:
    """Count the decoder rows `model` steps from now on (beams included)."""
    counter, step = [0], model.decode_step

    def counted(tokens: torch.Tensor, state: tuple[torch.Tensor, ...]) -> object:
        counter[0] += tokens.numel()
        return step(tokens, state)

    model.decode_step = counted  # type: ignore[method-assign]
    return counter


@pytest.mark.parametrize("seed", range(4))
def test_finishing_at_the_best_candidate_is_exact_without_length_penalty(seed: int) -> None:
    """With scores unnormalised, a live beam only loses log-prob, so once the likeliest
    candidate ends no later hypothesis can beat it: "best" returns what "all" does, in
    fewer decoder rows."""
    model, (src, src_len) = random_model(seed, eos_bias=1.0), random_batch(seed)
    max_len = max_lengths(src_len, a=1.5, b=3, cap=20)
    rows = {}
    results = {}
    for finish in ("all", "best"):
        counter = _counting(model)
        results[finish] = beam_search(
            model, src, src_len, max_len=max_len, beam_size=4, length_penalty=0.0, finish=finish
        )
        rows[finish] = counter[0]
        del model.decode_step
    assert [hyps[0] for hyps in results["best"]] == [hyps[0] for hyps in results["all"]]
    assert rows["best"] < rows["all"]


def test_finishing_at_the_best_candidate_still_returns_n_best(translator: Translator) -> None:
    options = SearchOptions(beam_size=4, n_best=3, finish="best")
    for hyps in translator.search(translator.encode(SOURCES), options):
        assert len(hyps) == 3 and len({tuple(hyp.tokens) for hyp in hyps}) == 3
