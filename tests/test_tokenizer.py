"""SentencePiece wrapper: training, fixed special ids, round trips, joint vocabularies."""

import io
from pathlib import Path

import pytest
import sentencepiece as spm
from conftest import number_pairs

from seq2seq import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Tokenizer, TokenizerError, TokenizerPair
from seq2seq.tokenizer import POOL_MIN


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train([s for s, _ in number_pairs(300)], vocab_size=40, model_type="bpe")


def test_special_ids_are_fixed(tokenizer: Tokenizer) -> None:
    assert tokenizer.encode(["eins zwei"])[0]
    pieces = [tokenizer._sp.IdToPiece(i) for i in (PAD_ID, UNK_ID, BOS_ID, EOS_ID)]
    assert pieces == ["<pad>", "<unk>", "<s>", "</s>"]


def test_encode_decode_round_trip(tokenizer: Tokenizer) -> None:
    texts = ["eins zwei drei", "neun", "acht null sieben sieben"]
    ids = tokenizer.encode(texts)
    assert all(BOS_ID not in seq and EOS_ID not in seq for seq in ids)
    assert tokenizer.decode(ids) == texts


def test_decode_drops_special_ids(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode(["eins"])[0]
    assert tokenizer.decode([[BOS_ID, *ids, EOS_ID, PAD_ID]]) == ["eins"]


def test_few_texts_and_many_encode_and_decode_alike(tokenizer: Tokenizer) -> None:
    texts = [s for s, _ in number_pairs(POOL_MIN + 1, seed=5)]  # one call on every core
    ids = tokenizer.encode(texts)
    assert ids[:9] == tokenizer.encode(texts[:9])  # one text at a time
    assert tokenizer.decode(ids)[:9] == tokenizer.decode(ids[:9]) == texts[:9]


def test_id_pieces_name_every_id_special_ones_included(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode(["eins zwei"])[0]
    assert tokenizer.id_pieces(ids) == tokenizer.pieces("eins zwei")
    assert tokenizer.id_pieces([BOS_ID, EOS_ID]) == ["<s>", "</s>"]


def test_save_and_load(tokenizer: Tokenizer, tmp_path: Path) -> None:
    path = f"{tmp_path}/src.model"
    tokenizer.save(path)
    assert Tokenizer.load(path).encode(["zwei drei"]) == tokenizer.encode(["zwei drei"])


def test_garbage_is_not_a_model() -> None:
    with pytest.raises(TokenizerError, match="not a SentencePiece model"):
        Tokenizer(b"definitely not a protobuf")


def test_foreign_special_ids_are_rejected() -> None:
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.Train(  # SentencePiece's defaults: unk 0, bos 1, eos 2, no pad
        sentence_iterator=iter([s for s, _ in number_pairs(300)]),
        model_writer=buffer,
        vocab_size=30,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    with pytest.raises(TokenizerError, match="special token ids"):
        Tokenizer(buffer.getvalue())


def test_joint_and_separate_pairs() -> None:
    pairs = number_pairs(300)
    joint = TokenizerPair.train(pairs, vocab_size=60, joint=True)
    separate = TokenizerPair.train(pairs, vocab_size=40)
    assert joint.joint and joint.src is joint.tgt
    assert not separate.joint
    assert joint.src.decode(joint.src.encode(["zwei two"])) == ["zwei two"]


def test_source_and_target_sizes_can_differ() -> None:
    pairs = number_pairs(300)
    pair = TokenizerPair.train(pairs, vocab_size=30, tgt_vocab_size=20)
    assert (pair.src.vocab_size, pair.tgt.vocab_size) == (30, 20)
    with pytest.raises(ValueError, match="joint model has one vocabulary"):
        TokenizerPair.train(pairs, vocab_size=30, tgt_vocab_size=20, joint=True)


def test_unknown_model_type() -> None:
    with pytest.raises(ValueError, match="model_type"):
        Tokenizer.train(["a b c"], vocab_size=10, model_type="word-level")
