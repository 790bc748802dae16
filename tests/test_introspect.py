"""Inspection: every step's h and c equal nn.LSTM's, the tokens equal translate's, bad input."""

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import number_pairs

from seq2seq import BOS_ID, EOS_ID, ModelConfig, SearchOptions, Seq2Seq, Translator
from seq2seq.introspect import LSTM_SIGNALS, read_model

TEXTS = [source for source, _ in number_pairs(8, seed=21)]


@pytest.fixture(scope="module")
def translator(tiny_checkpoint_path: Path) -> Translator:
    return Translator.load(tiny_checkpoint_path, device="cpu")


def small_model(layers: int, *, reverse_source: bool = True) -> Seq2Seq:
    torch.manual_seed(layers)
    config = ModelConfig(
        30,
        30,
        embedding_size=8,
        hidden_size=16,
        num_layers=layers,
        dropout=0.0,
        reverse_source=reverse_source,
    )
    return Seq2Seq(config).eval()


def lstm_states_per_step(
    lstm: torch.nn.LSTM, embedded: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """nn.LSTM's (h, c), [L, H] each, after each step: the final state of every prefix."""
    states = []
    for length in range(1, embedded.size(0) + 1):
        _, (h, c) = lstm(embedded[None, :length], state)  # [L, 1, H] each
        states.append((h[:, 0], c[:, 0]))
    return states


@pytest.mark.parametrize("layers", [1, 2])
def test_every_step_equals_nn_lstm_in_encoder_and_decoder(layers: int) -> None:
    model = small_model(layers)
    source, target = [5, 9, 11, 4, 27, 6], [BOS_ID, 7, 8, 12, 29]
    encoder, decoder, _ = read_model(model, source, target)
    with torch.no_grad():
        src_embedded = model.encoder.embedding(torch.tensor(source))  # [S, E]
        expected_encoder = lstm_states_per_step(model.encoder.rnn, src_embedded, None)
        tgt_embedded = model.decoder.embedding(torch.tensor(target))  # [T, E]
        h, c = expected_encoder[-1]
        initial = (h.unsqueeze(1), c.unsqueeze(1))  # [L, 1, H] each
        expected_decoder = lstm_states_per_step(model.decoder.rnn, tgt_embedded, initial)
    for traces, expected in ((encoder, expected_encoder), (decoder, expected_decoder)):
        assert len(traces) == layers
        for step, (h, c) in enumerate(expected):
            for layer, trace in enumerate(traces):
                torch.testing.assert_close(trace["hidden"][step], h[layer], atol=1e-5, rtol=0)
                torch.testing.assert_close(trace["cell"][step], c[layer], atol=1e-5, rtol=0)


@pytest.mark.parametrize("reverse_source", [True, False])
def test_the_encoder_hands_the_models_own_final_state_on(reverse_source: bool) -> None:
    model = small_model(2, reverse_source=reverse_source)
    source = [5, 9, 11, 4]
    read = source[::-1] if reverse_source else source
    encoder, _, _ = read_model(model, read, [BOS_ID])
    with torch.no_grad():
        h, c = model.encode(torch.tensor([source]), torch.tensor([len(source)]))  # [L, 1, H]
    for layer, trace in enumerate(encoder):
        torch.testing.assert_close(trace["hidden"][-1], h[layer, 0], atol=1e-5, rtol=0)
        torch.testing.assert_close(trace["cell"][-1], c[layer, 0], atol=1e-5, rtol=0)


def test_gates_are_probabilities_and_cell_follows_them() -> None:
    encoder, _, _ = read_model(small_model(1), [5, 9, 11], [BOS_ID])
    trace = encoder[0]
    assert tuple(trace.signals) == LSTM_SIGNALS
    for gate in ("input", "forget", "output"):
        assert bool(((trace[gate] > 0) & (trace[gate] < 1)).all())
    previous = torch.cat([torch.zeros(1, 16), trace["cell"][:-1]])  # [T, H]
    rebuilt = trace["forget"] * previous + trace["input"] * trace["candidate"]
    torch.testing.assert_close(trace["cell"], rebuilt)
    torch.testing.assert_close(trace["hidden"], trace["output"] * trace["cell"].tanh())
    with pytest.raises(ValueError, match="unknown signal 'reset'"):
        trace["reset"]


@pytest.mark.parametrize("beam_size", [1, 3])
def test_tokens_are_translates_tokens(translator: Translator, beam_size: int) -> None:
    expected = translator.translate(TEXTS, SearchOptions(beam_size=beam_size))
    ranked = translator.search(translator.encode(TEXTS), SearchOptions(beam_size=beam_size))
    ids = [hyps[0].tokens for hyps in ranked]
    for text, translation, tokens in zip(TEXTS, expected, ids, strict=True):
        inspection = translator.inspect(text, SearchOptions(beam_size=beam_size))
        assert inspection.translation == translation
        assert inspection.decoder.ids == [BOS_ID, *tokens]
        assert [step.chosen.id for step in inspection.steps] == [*tokens, EOS_ID]
        assert len(inspection.encoder.ids) == len(translator.encode([text])[0])


def test_greedy_choices_are_each_steps_most_likely_token(translator: Translator) -> None:
    for text in TEXTS:
        inspection = translator.inspect(text, top_k=3)
        for step in inspection.steps:
            assert len(step.top) == 3
            assert step.chosen == step.top[0]
            assert step.top[0].probability >= step.top[1].probability >= step.top[2].probability


def test_beam_path_log_probability_is_the_hypothesis_score(translator: Translator) -> None:
    text = TEXTS[0]
    hypothesis = translator.search(translator.encode([text]), SearchOptions(beam_size=4))[0][0]
    steps = translator.inspect(text, SearchOptions(beam_size=4)).steps
    log_prob = sum(math.log(step.chosen.probability) for step in steps)
    assert log_prob / len(steps) == pytest.approx(hypothesis.score, abs=1e-4)


def test_the_encoder_reads_the_source_reversed(translator: Translator) -> None:
    inspection = translator.inspect("eins zwei drei")
    source = translator.encode(["eins zwei drei"])[0]
    assert inspection.reverse_source
    assert inspection.encoder.ids == source[::-1]
    assert inspection.encoder.tokens == translator.tokenizers.src.id_pieces(source[::-1])
    assert inspection.decoder.tokens[0] == "<s>" and inspection.steps[-1].chosen.token == "</s>"


def test_a_translation_cut_at_the_length_limit_has_no_end_step(translator: Translator) -> None:
    text = "eins zwei drei vier fünf"
    options = SearchOptions(beam_size=1, max_length=2)
    tokens = translator.search(translator.encode([text]), options)[0][0].tokens
    inspection = translator.inspect(text, SearchOptions(beam_size=1, max_length=2))
    assert len(tokens) == 2
    assert [step.chosen.id for step in inspection.steps] == tokens
    assert inspection.decoder.ids == [BOS_ID, tokens[0]]


def test_bad_input_is_a_one_line_value_error(translator: Translator) -> None:
    for text in ("", "   \n"):
        with pytest.raises(ValueError, match="empty"):
            translator.inspect(text)
    with pytest.raises(ValueError, match=r"has \d+ source subwords; inspect reads at most 64"):
        translator.inspect("eins " * 70)
    with pytest.raises(ValueError, match="at most 3"):
        translator.inspect("eins zwei drei vier", max_tokens=3)
    with pytest.raises(ValueError, match="top_k"):
        translator.inspect("eins", top_k=0)


def test_int8_models_are_refused(tiny_checkpoint_path: Path) -> None:
    quantized = Translator.load(tiny_checkpoint_path, device="cpu", precision="int8")
    with pytest.raises(ValueError, match="fp32"):
        quantized.inspect("eins zwei")


def test_inspecting_leaves_the_model_and_translation_as_they_were(translator: Translator) -> None:
    before = {name: p.clone() for name, p in translator.model.state_dict().items()}
    expected = translator.translate(TEXTS, SearchOptions(beam_size=2))
    translator.inspect(TEXTS[0], SearchOptions(beam_size=2))
    assert translator.translate(TEXTS, SearchOptions(beam_size=2)) == expected
    for name, parameter in translator.model.state_dict().items():
        assert torch.equal(parameter, before[name])
    for module in translator.model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert not translator.model.training


def test_to_dict_is_fixed_point_json(translator: Translator) -> None:
    inspection = translator.inspect("eins zwei drei", top_k=2)
    data = json.loads(json.dumps(inspection.to_dict(decimals=2)))
    assert data["scale"] == 100 and data["signals"] == list(LSTM_SIGNALS)
    cell = data["encoder"]["layers"][0]["cell"]  # [step][unit]
    assert len(cell) == len(inspection.encoder.ids) and len(cell[0]) == 64
    expected = (inspection.encoder.layers[0]["cell"] * 100).round().int().tolist()
    assert cell == expected
    steps = data["decoder"]["steps"]
    assert len(steps) == len(data["decoder"]["tokens"]) == len(inspection.steps)
    assert len(steps[0]["top"]) == 2 and 0 < steps[0]["probability"] <= 1
    assert inspection.to_dict(decimals=0)["scale"] == 1
    with pytest.raises(ValueError, match="decimals"):
        inspection.to_dict(decimals=-1)


def test_to_dict_can_carry_fewer_signals(translator: Translator) -> None:
    inspection = translator.inspect("eins zwei drei")
    data = inspection.to_dict(signals=["hidden", "forget"])
    assert data["signals"] == ["hidden", "forget"]
    assert set(data["decoder"]["layers"][0]) == {"hidden", "forget"}
    assert len(json.dumps(data)) < len(json.dumps(inspection.to_dict())) / 2
    with pytest.raises(ValueError, match=r"unknown signals \['reset'\]"):
        inspection.to_dict(signals=["reset"])
