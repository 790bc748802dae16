"""Lexical shortlists: the lexicon IBM Model 1 learns, the lists a batch decodes over, searches
through them, and how they are stored, added by `seq2seq shortlist` and used by `--shortlist`."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from conftest import number_pairs, random_batch, random_model
from fastapi.testclient import TestClient

from seq2seq import SearchOptions, Seq2Seq, Translator
from seq2seq.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from seq2seq.cli import main
from seq2seq.config import EOS_ID, UNK_ID
from seq2seq.ensemble import Ensemble
from seq2seq.precision import quantize_int8
from seq2seq.search import beam_search, greedy_search, max_lengths
from seq2seq.shortlist import Shortlist, Shortlisted, build_shortlist, output_weights, train_lexicon
from serve.app import create_app
from serve.settings import Settings

THE = 4
"""A target id twice in every sentence of `dictionary_pairs`: co-occurrence ranks it first."""


def dictionary_pairs(count: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Source words 5..24, each translated by target word 2s (in shuffled order), and THE twice."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        source = [rng.randrange(5, 25) for _ in range(rng.randint(2, 6))]
        target = [2 * s for s in source] + [THE, THE]
        rng.shuffle(target)
        pairs.append((source, target))
    return pairs


def test_ibm_model_1_finds_each_words_translation_not_the_commonest_word() -> None:
    lexicon = train_lexicon(dictionary_pairs(400), src_vocab_size=25, tgt_vocab_size=50)
    best = lexicon.top(25, 1)  # [25, 1]
    assert best[5:, 0].tolist() == [2 * s for s in range(5, 25)]
    assert (best[:5, 0] == EOS_ID).all()  # never seen: nothing but the end
    one = train_lexicon(dictionary_pairs(400), 25, 50, iterations=1).top(25, 1)
    assert (one[5:, 0] == THE).all()  # one round is co-occurrence counting: THE everywhere


def test_a_batchs_list_is_its_sources_best_the_frequent_and_the_end() -> None:
    shortlist = build_shortlist(dictionary_pairs(400), 25, 50, best=2, frequent=1)
    assert shortlist.frequent.tolist() == [THE]
    vocab = shortlist.vocab([[5, 6], [6]])
    assert vocab.tolist() == sorted(
        {UNK_ID, EOS_ID, THE, 10, 12, *shortlist.best[5:7].flatten().tolist()}
    )
    with pytest.raises(ValueError, match="outside the target vocabulary"):
        Shortlist(shortlist.best, shortlist.frequent, tgt_vocab_size=10)


def masked_to(model: Seq2Seq, vocab: torch.Tensor) -> Seq2Seq:
    """`model` with every output row outside `vocab` pushed to -1e9: what a shortlist means."""
    with torch.no_grad():
        outside = torch.ones(model.decoder.output.bias.size(0), dtype=torch.bool)
        outside[vocab] = False
        model.decoder.output.bias[outside] = -1e9
    return model


@pytest.mark.parametrize("beam", [1, 3])
def test_a_shortlisted_search_is_the_search_over_only_those_tokens(beam: int) -> None:
    src, src_len = random_batch(3)
    max_len = max_lengths(src_len, a=1.5, b=4, cap=20)
    vocab = torch.tensor([UNK_ID, EOS_ID, 5, 7, 11, 12, 20, 29])
    model = random_model(0, eos_bias=1.0)
    shortlisted = Shortlisted(model, output_weights(model), vocab)
    expected_model = masked_to(random_model(0, eos_bias=1.0), vocab)
    if beam == 1:
        got = greedy_search(shortlisted, src, src_len, max_len=max_len, columns=vocab)
        assert got == greedy_search(expected_model, src, src_len, max_len=max_len)
        assert {token for ids in got for token in ids} <= set(vocab.tolist())
        return
    got_hyps = beam_search(
        shortlisted, src, src_len, max_len=max_len, beam_size=beam, columns=vocab
    )
    want = beam_search(expected_model, src, src_len, max_len=max_len, beam_size=beam)
    for got_one, want_one in zip(got_hyps, want, strict=True):
        assert [h.tokens for h in got_one] == [h.tokens for h in want_one]
        assert got_one[0].score == pytest.approx(want_one[0].score, abs=1e-5)


def test_the_whole_vocabulary_as_list_decodes_as_the_model_does() -> None:
    src, src_len = random_batch(4)
    max_len = max_lengths(src_len, a=1.5, b=4, cap=20)
    everything = torch.arange(30)
    for model in (random_model(1), Ensemble([random_model(1), random_model(2)])):
        shortlisted = Shortlisted(model, output_weights(model), everything)
        for beam in (1, 4):
            got = beam_search(shortlisted, src, src_len, max_len=max_len, beam_size=beam,
                              columns=everything)  # fmt: skip
            want = beam_search(model, src, src_len, max_len=max_len, beam_size=beam)
            assert [h[0].tokens for h in got] == [h[0].tokens for h in want]


def test_an_int8_model_is_shortlisted_through_its_dequantised_output_layer() -> None:
    model = quantize_int8(random_model(5, eos_bias=1.0))
    ((weight, bias),) = output_weights(model)
    assert weight.dtype == torch.float32 and weight.shape == (30, 16) and bias.shape == (30,)
    src, src_len = random_batch(5)
    vocab = torch.tensor([UNK_ID, EOS_ID, 8, 9, 10])
    out = greedy_search(Shortlisted(model, [(weight, bias)], vocab), src, src_len,
                        max_len=torch.full((12,), 6), columns=vocab)  # fmt: skip
    assert {token for ids in out for token in ids} <= {UNK_ID, 8, 9, 10}


@pytest.fixture(scope="module")
def number_text(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("text")
    pairs = number_pairs(600, seed=3)
    (directory / "train.de").write_text("".join(f"{de}\n" for de, _ in pairs))
    (directory / "train.en").write_text("".join(f"{en}\n" for _, en in pairs))
    return directory / "train.de", directory / "train.en"


@pytest.fixture(scope="module")
def shortlisted_path(
    tiny_checkpoint_path: Path,
    number_text: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    output = tmp_path_factory.mktemp("shortlisted") / "tiny.pt"
    source, target = number_text
    args = ["--model", str(tiny_checkpoint_path), "--source", str(source), "--target", str(target)]
    assert main(["shortlist", *args, "--best", "3", "--frequent", "4", "-o", str(output)]) == 0
    return output


def test_the_command_stores_a_shortlist_the_checkpoint_reads_back(shortlisted_path: Path) -> None:
    checkpoint = load_checkpoint(shortlisted_path)
    assert checkpoint.shortlist is not None
    vocab_sizes = (checkpoint.config.src_vocab_size, checkpoint.config.tgt_vocab_size)
    assert (checkpoint.shortlist.best.shape, checkpoint.shortlist.tgt_vocab_size) == (
        (vocab_sizes[0], 3), vocab_sizes[1])  # fmt: skip
    assert len(checkpoint.shortlist.frequent) == 4
    tokenizers = checkpoint.tokenizers
    (drei,) = tokenizers.src.encode(["drei"])
    listed = tokenizers.tgt.id_pieces(checkpoint.shortlist.best[drei[-1]].tolist())
    assert "▁three" in listed or "three" in "".join(listed)


def test_a_shortlist_for_other_vocabularies_is_refused(
    shortlisted_path: Path, tmp_path: Path
) -> None:
    checkpoint = load_checkpoint(shortlisted_path)
    assert checkpoint.shortlist is not None
    checkpoint.shortlist = Shortlist(checkpoint.shortlist.best[:5], checkpoint.shortlist.frequent,
                                     checkpoint.shortlist.tgt_vocab_size)  # fmt: skip
    save_checkpoint(checkpoint, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="shortlist was made for other vocabularies"):
        load_checkpoint(tmp_path / "bad.pt")


def test_translating_through_the_shortlist_keeps_the_translations(
    shortlisted_path: Path, tiny_checkpoint_path: Path
) -> None:
    lines = ["eins zwei drei", "vier fünf", "sechs sieben acht neun null"]
    whole = Translator.load(tiny_checkpoint_path, device="cpu")
    short = Translator.load(shortlisted_path, device="cpu", shortlist=True)
    assert short.info()["shortlist"] and not whole.info()["shortlist"]
    for beam in (1, 3):
        options = SearchOptions(beam_size=beam)
        assert short.translate(lines, options) == whole.translate(lines, options)


def test_the_command_line_errors_are_one_line(
    tiny_checkpoint_path: Path, number_text: tuple[Path, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    source = number_text[0]
    (tmp_path / "short.en").write_text("one\n")
    args = [
        "--model",
        str(tiny_checkpoint_path),
        "--source",
        str(source),
        "-o",
        str(tmp_path / "o.pt"),
    ]
    assert main(["shortlist", *args, "--target", str(tmp_path / "short.en")]) == 2
    assert "differ in length" in capsys.readouterr().err
    assert main(["shortlist", *args, "--target", str(tmp_path / "none.en")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["translate", "--model", str(tiny_checkpoint_path), "--shortlist"]) == 2
    error = capsys.readouterr().err.strip()
    assert "has no shortlist" in error and "\n" not in error


def test_the_server_decodes_through_the_shortlist_and_says_so(
    shortlisted_path: Path, tiny_checkpoint_path: Path
) -> None:
    expected = Translator.load(tiny_checkpoint_path, device="cpu").translate(
        ["drei eins vier"], SearchOptions(beam_size=1)
    )
    settings = Settings(model=[str(shortlisted_path)], device="cpu", shortlist=True, max_wait_ms=2)
    with TestClient(create_app(settings)) as client:
        response = client.post("/translate", json={"text": "drei eins vier"})
        assert response.json()["translations"] == expected
        (listed,) = client.get("/models").json()
        assert listed["shortlist"] is True


def test_translate_and_evaluate_take_the_shortlist_flag(
    shortlisted_path: Path,
    number_text: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source, target = number_text
    lines = source.read_text().splitlines()[:20]
    (tmp_path / "src.de").write_text("\n".join(lines) + "\n")
    (tmp_path / "ref.en").write_text("\n".join(target.read_text().splitlines()[:20]) + "\n")
    model = ["--model", str(shortlisted_path), "--shortlist", "--beam-size", "2"]
    assert main(["translate", *model, "--input", str(tmp_path / "src.de")]) == 0
    expected = Translator.load(shortlisted_path, device="cpu", shortlist=True).translate(
        lines, SearchOptions(beam_size=2)
    )
    assert capsys.readouterr().out.splitlines() == expected
    files = ["--src", str(tmp_path / "src.de"), "--ref", str(tmp_path / "ref.en")]
    assert main(["evaluate", *model, *files, "--json"]) == 0
    assert "bleu" in capsys.readouterr().out


def test_a_big_corpus_is_learnt_from_its_head(monkeypatch: pytest.MonkeyPatch) -> None:
    early, late = ([5], [10]), ([6], [12])  # each pairs (1 + 1) * 1 = 2 pieces
    pairs = [early] * 10 + [late] * 20 + [([7] * 101, [14])]  # the last is too long anyway
    assert build_shortlist(pairs, 25, 50, frequent=1).frequent.tolist() == [12]
    monkeypatch.setattr("seq2seq.shortlist.MAX_LINKS", 20)  # room for the first 10 pairs
    assert build_shortlist(pairs, 25, 50, frequent=1).frequent.tolist() == [10]
    assert build_shortlist(pairs, 25, 50, frequent=1, max_pairs=5).frequent.tolist() == [10]
