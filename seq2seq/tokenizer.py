"""SentencePiece subword tokenizers: training, batch encode/decode, fixed special ids."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sentencepiece as spm

from seq2seq.config import BOS_ID, EOS_ID, PAD_ID, UNK_ID

POOL_MIN = 256
"""Texts from which `encode` and `decode` make one SentencePiece call on every core: that
call starts a thread pool (about 0.13 ms on our 2-core machine, whatever its `num_threads`),
while one text alone takes 3 to 7 us, so fewer go one at a time."""


class TokenizerError(ValueError):
    """A SentencePiece model that cannot be used by this project."""


class Tokenizer:
    """One SentencePiece model with the project's fixed pad/unk/bos/eos ids."""

    def __init__(self, model_proto: bytes) -> None:
        self._proto = bytes(model_proto)
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._proto)
        except Exception as error:  # sentencepiece raises bare RuntimeError/OSError
            raise TokenizerError(f"not a SentencePiece model ({error})") from error
        self._check_special_ids()

    def _check_special_ids(self) -> None:
        expected = {"pad": PAD_ID, "unk": UNK_ID, "bos": BOS_ID, "eos": EOS_ID}
        found = {
            "pad": self._sp.pad_id(),
            "unk": self._sp.unk_id(),
            "bos": self._sp.bos_id(),
            "eos": self._sp.eos_id(),
        }
        if found != expected:
            raise TokenizerError(f"special token ids are {found}, this project needs {expected}")

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        *,
        vocab_size: int,
        model_type: str = "unigram",
        character_coverage: float = 1.0,
        max_sentences: int = 2_000_000,
        seed: int = 0,
    ) -> Tokenizer:
        """Train a model on `texts` (one sentence each) and return it, nothing written to disk.

        `vocab_size` is an upper bound: a small corpus gets the largest vocabulary it supports.
        """
        if model_type not in ("unigram", "bpe"):
            raise ValueError(f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
        buffer = io.BytesIO()
        spm.set_random_generator_seed(seed)
        spm.SentencePieceTrainer.Train(
            sentence_iterator=(text for text in texts if text.strip()),
            model_writer=buffer,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            hard_vocab_limit=False,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            num_threads=2,
            minloglevel=2,
        )
        return cls(buffer.getvalue())

    @classmethod
    def load(cls, path: str) -> Tokenizer:
        """Read a `.model` file written by SentencePiece or by `save`."""
        with open(path, "rb") as handle:
            return cls(handle.read())

    def save(self, path: str) -> None:
        """Write the model as a standard SentencePiece `.model` file."""
        with open(path, "wb") as handle:
            handle.write(self._proto)

    @property
    def proto(self) -> bytes:
        """The serialized model, as stored in checkpoints."""
        return self._proto

    @property
    def vocab_size(self) -> int:
        """Number of pieces, special tokens included."""
        return int(self._sp.GetPieceSize())

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Subword ids of each text, without BOS/EOS."""
        if len(texts) < POOL_MIN:
            return [list(self._sp.Encode(text)) for text in texts]
        ids = self._sp.Encode(list(texts), num_threads=-1)
        return [list(seq) for seq in ids]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Detokenized text of each id sequence; special ids are dropped."""
        if len(ids) < POOL_MIN:
            return [str(self._sp.Decode(list(seq))) for seq in ids]
        decoded = self._sp.Decode([list(seq) for seq in ids], num_threads=-1)
        return [str(text) for text in decoded]

    def pieces(self, text: str) -> list[str]:
        """The subword pieces of one text, for inspection."""
        return [str(piece) for piece in self._sp.EncodeAsPieces(text)]

    def id_pieces(self, ids: Sequence[int]) -> list[str]:
        """The piece of each id, special ids included ('<s>', '</s>'), for inspection."""
        return [str(self._sp.IdToPiece(int(index))) for index in ids]


@dataclass(frozen=True)
class TokenizerPair:
    """Source and target tokenizers; one shared object when the vocabulary is joint."""

    src: Tokenizer
    tgt: Tokenizer

    @property
    def joint(self) -> bool:
        """Whether source and target share one SentencePiece model."""
        return self.src.proto == self.tgt.proto

    @classmethod
    def train(
        cls,
        pairs: Sequence[tuple[str, str]],
        *,
        vocab_size: int,
        tgt_vocab_size: int | None = None,
        joint: bool = False,
        model_type: str = "unigram",
        seed: int = 0,
    ) -> TokenizerPair:
        """Train source/target models on sentence pairs (one joint model if `joint`).

        `vocab_size` bounds the source model, `tgt_vocab_size` the target one (None: the same).
        """
        if joint:
            if tgt_vocab_size not in (None, vocab_size):
                raise ValueError("a joint model has one vocabulary: leave tgt_vocab_size unset")
            texts = [text for pair in pairs for text in pair]
            shared = Tokenizer.train(texts, vocab_size=vocab_size, model_type=model_type, seed=seed)
            return cls(shared, shared)
        src = Tokenizer.train(
            (s for s, _ in pairs), vocab_size=vocab_size, model_type=model_type, seed=seed
        )
        tgt = Tokenizer.train(
            (t for _, t in pairs),
            vocab_size=tgt_vocab_size or vocab_size,
            model_type=model_type,
            seed=seed,
        )
        return cls(src, tgt)
