"""Ensembles: one model alone or twice gives its own output; the mean of log-probabilities;
members of different cells; one ensemble file; models that cannot be joined."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import number_pairs, random_batch, random_model

from seq2seq import (
    Checkpoint,
    SearchOptions,
    Seq2Seq,
    Translator,
    load_checkpoint,
    save_checkpoint,
)
from seq2seq.checkpoint import join_checkpoints
from seq2seq.ensemble import Ensemble, EnsembleConfig, config_from_dict

TEXTS = [source for source, _ in number_pairs(30, seed=17, max_words=6)]
SEARCHES = [SearchOptions(beam_size=1), SearchOptions(beam_size=4, n_best=2)]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_path: Path) -> Checkpoint:
    return load_checkpoint(tiny_checkpoint_path)


def translator_of(model: Seq2Seq | Ensemble, checkpoint: Checkpoint) -> Translator:
    return Translator(model, checkpoint.tokenizers, device="cpu", src_lang="de", tgt_lang="en")


def ranked(translator: Translator, options: SearchOptions) -> list[list[str]]:
    return translator.translate_ranked(TEXTS, options)


@pytest.mark.parametrize("copies", [1, 2])
@pytest.mark.parametrize("options", SEARCHES, ids=["greedy", "beam 4"])
def test_an_ensemble_of_one_model_once_or_twice_translates_as_the_model(
    checkpoint: Checkpoint, copies: int, options: SearchOptions
) -> None:
    alone = translator_of(checkpoint.build_model(), checkpoint)
    members = [checkpoint.build_model() for _ in range(copies)]
    ensemble = translator_of(Ensemble(members), checkpoint)
    assert ranked(ensemble, options) == ranked(alone, options)
    sources = alone.encode(TEXTS)
    together, apart = ensemble.search(sources, options), alone.search(sources, options)
    for hyps, own in zip(together, apart, strict=True):
        assert [h.tokens for h in hyps] == [h.tokens for h in own]
        assert [h.score for h in hyps] == pytest.approx([h.score for h in own], abs=1e-5)


def test_each_step_scores_the_mean_of_the_members_log_probabilities() -> None:
    first, second = random_model(1), random_model(2)
    ensemble = Ensemble([first, second])
    src, src_len = random_batch(3)
    tokens = torch.full((src.size(0),), 2)
    scores, state = ensemble.decode_step(tokens, ensemble.encode(src, src_len))  # [B, V]
    expected, own_states = [], []
    for model in (first, second):
        logits, own = model.decode_step(tokens, model.encode(src, src_len))
        expected.append(logits.log_softmax(dim=-1))
        own_states.extend(own)
    torch.testing.assert_close(scores, (expected[0] + expected[1]) / 2)
    assert len(state) == 4
    for part, own_part in zip(state, own_states, strict=True):
        assert torch.equal(part, own_part)


def test_members_of_different_cells_and_depths_keep_their_own_states(
    checkpoint: Checkpoint,
) -> None:
    torch.manual_seed(0)
    config = replace(checkpoint.config, cell="gru", num_layers=2, bidirectional_encoder=True)
    ensemble = Ensemble([checkpoint.build_model(), Seq2Seq(config).eval()])
    assert ensemble.state_parts == [2, 1]
    state = ensemble.encode(*random_batch(4, size=3))
    assert [tuple(part.shape) for part in state] == [(1, 3, 64), (1, 3, 64), (2, 3, 64)]
    translations = translator_of(ensemble, checkpoint).translate(TEXTS[:5])
    assert len(translations) == 5


def test_an_ensemble_file_loads_and_serves_like_one_model(
    checkpoint: Checkpoint, tiny_checkpoint_path: Path, tmp_path: Path
) -> None:
    joined = join_checkpoints([checkpoint, checkpoint], ["a.pt", "b.pt"])
    save_checkpoint(joined, tmp_path / "ensemble.pt")
    loaded = Translator.load(tmp_path / "ensemble.pt", device="cpu")
    assert isinstance(loaded.model, Ensemble) and len(loaded.model.members) == 2
    assert loaded.metadata["ensemble"] == [{"file": f, "step": 600} for f in ("a.pt", "b.pt")]
    assert loaded.info()["parameters"] == 2 * checkpoint.build_model().num_parameters()
    paths = [tiny_checkpoint_path, tiny_checkpoint_path]
    from_paths = Translator.load_ensemble(paths, device="cpu")
    alone = Translator.load(tiny_checkpoint_path, device="cpu")
    for options in SEARCHES:
        assert ranked(loaded, options) == ranked(alone, options) == ranked(from_paths, options)
    nested = join_checkpoints([joined, checkpoint], ["ensemble.pt", "c.pt"])
    assert isinstance(nested.config, EnsembleConfig) and len(nested.config.members) == 3


def test_an_int8_ensemble_translates(tiny_checkpoint_path: Path) -> None:
    paths = [tiny_checkpoint_path, tiny_checkpoint_path]
    int8 = Translator.load_ensemble(paths, device="cpu", precision="int8")
    alone = Translator.load(tiny_checkpoint_path, device="cpu", precision="int8")
    assert int8.translate(TEXTS, SearchOptions(beam_size=1)) == alone.translate(
        TEXTS, SearchOptions(beam_size=1)
    )
    with pytest.raises(ValueError, match="not an ensemble"):
        int8.inspect(TEXTS[0])


def test_models_with_other_tokenizers_cannot_be_joined(
    tiny_checkpoint_path: Path, models_dir: Path
) -> None:
    other = models_dir / "en_de.pt"
    with pytest.raises(ValueError, match=f"{other} has another source tokenizer than"):
        Translator.load_ensemble([tiny_checkpoint_path, other], device="cpu")


def test_ensemble_configs_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        EnsembleConfig(())
    one, other = random_model(0).config, replace(random_model(0).config, tgt_vocab_size=31)
    with pytest.raises(ValueError, match="one vocabulary size"):
        EnsembleConfig((one, other))
    assert config_from_dict(EnsembleConfig((one, one)).to_dict()) == EnsembleConfig((one, one))
    with pytest.raises(ValueError, match="one key"):
        config_from_dict({"ensemble": [one.to_dict()], "extra": 1})
