"""Unit search: properties of token sequences, planted units found, saturation, bad input."""

from pathlib import Path

import pytest
import torch

from seq2seq import Translator
from seq2seq.introspect import LSTM_SIGNALS, Inspection, LayerTrace, SideTrace
from seq2seq.units import pearson, property_values, rank_units, saturated_units

UNITS = 8


def side(tokens: list[str], planted: dict[int, torch.Tensor], *, seed: int) -> SideTrace:
    """A one-layer trace over `tokens` with random signals, and unit -> cell values planted."""
    generator = torch.Generator().manual_seed(seed)
    signals = {name: torch.rand(len(tokens), UNITS, generator=generator) for name in LSTM_SIGNALS}
    for unit, values in planted.items():
        signals["cell"][:, unit] = values
    return SideTrace(tokens, list(range(len(tokens))), [LayerTrace(signals)])


def inspection(length: int, *, seed: int) -> Inspection:
    """Encoder unit 3 counts up, decoder unit 5 counts down; 'x' tokens on both sides."""
    steps = torch.arange(length, dtype=torch.float32)
    tokens = ["▁a", "x"] * (length // 2) + ["▁a"] * (length % 2)
    encoder = side(tokens, {3: steps * 0.1}, seed=seed)
    decoder = side(["<s>", *tokens[1:]], {5: (length - 1 - steps) * 0.1}, seed=seed + 1)
    return Inspection("", "", 1, True, encoder, decoder, [])


def test_positions_count_up_and_remaining_down() -> None:
    tokens = ["▁Ein", "▁Hund", "."]
    assert property_values(tokens, "position").tolist() == [0, 1, 2]
    assert property_values(tokens, "remaining").tolist() == [2, 1, 0]
    assert property_values(tokens, "token:Hund").tolist() == [0, 1, 0]
    assert property_values(tokens, "token:▁Hund").tolist() == [0, 1, 0]


def test_inside_brackets_and_quotes_nests_and_closes() -> None:
    tokens = ["▁er", "▁„", "ja", "▁(", "x", ")", "“", "▁und", '▁"', "b", '"', "▁«", "c", "»"]
    inside = property_values(tokens, "inside").tolist()
    assert inside == [0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0]


def test_an_unknown_property_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown property 'length'; valid: position, rem"):
        property_values(["a"], "length")
    with pytest.raises(ValueError, match="token:PIECE"):
        rank_units(inspection(6, seed=0), "token:")


def test_the_counting_cell_is_found_over_sentences_of_different_lengths() -> None:
    pool = [inspection(length, seed=length) for length in (5, 9, 14)]
    best = rank_units(pool, "position", top=3)
    assert (best[0].side, best[0].layer, best[0].unit) == ("encoder", 0, 3)
    assert best[0].r == pytest.approx(1.0)
    down = rank_units(pool, "remaining", side="decoder", top=1)[0]
    assert (down.side, down.unit) == ("decoder", 5) and down.r == pytest.approx(1.0)
    assert rank_units(pool, "position", side="decoder", top=1)[0].r < 0
    assert abs(rank_units(pool, "remaining", side="encoder", top=1)[0].r) < 0.9


def test_ranking_is_by_absolute_r_and_covers_every_unit() -> None:
    ranked = rank_units(inspection(10, seed=1), "token:x", signal="hidden", top=100)
    assert len(ranked) == 2 * UNITS
    assert [abs(item.r) for item in ranked] == sorted(
        (abs(item.r) for item in ranked), reverse=True
    )
    assert {item.side for item in ranked} == {"encoder", "decoder"}
    assert ranked[0].to_dict()["r"] == round(ranked[0].r, 4)


def test_a_property_constant_everywhere_is_refused() -> None:
    with pytest.raises(ValueError, match="same at every step"):
        rank_units(inspection(6, seed=0), "token:never")
    only_decoder = rank_units(inspection(6, seed=0), "token:<s>", top=100)
    assert {item.side for item in only_decoder} == {"decoder"}


def test_bad_side_and_signal_are_value_errors() -> None:
    with pytest.raises(ValueError, match="side must be"):
        rank_units(inspection(6, seed=0), "position", side="middle")
    with pytest.raises(ValueError, match="unknown signal 'reset'"):
        rank_units(inspection(6, seed=0), "position", signal="reset")
    with pytest.raises(ValueError, match="no inspections"):
        rank_units([], "position")


def test_saturated_gates_rank_first() -> None:
    item = inspection(10, seed=2)
    item.encoder.layers[0]["forget"][:, 2] = 0.97
    item.encoder.layers[0]["forget"][:5, 6] = 0.02
    ranked = saturated_units(item, gate="forget", side="encoder", top=100)
    assert len(ranked) == UNITS
    assert (ranked[0].unit, ranked[0].high, ranked[0].low) == (2, 1.0, 0.0)
    shares = {unit.unit: unit for unit in ranked}
    assert shares[6].low >= 0.5
    assert [unit.share for unit in ranked] == sorted((unit.share for unit in ranked), reverse=True)
    assert ranked[0].to_dict()["share"] == 1.0


def test_pearson_matches_numpy_and_is_zero_for_a_flat_unit() -> None:
    generator = torch.Generator().manual_seed(0)
    values, target = torch.rand(30, 4, generator=generator), torch.rand(30, generator=generator)
    values[:, 1] = 0.5
    expected = [float(torch.corrcoef(torch.stack([values[:, i], target]))[0, 1]) for i in (0, 2, 3)]
    r = pearson(values, target)
    assert r[1] == 0.0
    assert r[[0, 2, 3]].tolist() == pytest.approx(expected, abs=1e-5)


def test_ranks_a_real_models_units(tiny_checkpoint_path: Path) -> None:
    translator = Translator.load(tiny_checkpoint_path, device="cpu")
    pool = [translator.inspect(text) for text in ("eins zwei drei vier", "fünf", "sechs null")]
    ranked = rank_units(pool, "remaining", side="decoder", top=5)
    assert len(ranked) == 5 and all(-1 <= item.r <= 1 for item in ranked)
    assert abs(ranked[0].r) > 0.5
