"""TextCodec: a checkpoint's tokenizers, languages and metadata, loaded without its weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import number_pairs

from seq2seq import (
    Checkpoint,
    ModelConfig,
    Seq2Seq,
    TextCodec,
    TokenizerPair,
    Translator,
    load_checkpoint,
    save_checkpoint,
)

TEXTS = [s for s, _ in number_pairs(10, seed=5)]

PEAK_RSS_GROWTH = """
import resource, sys
from seq2seq import TextCodec

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

before = peak_mib()
TextCodec.load(sys.argv[1])
print(peak_mib() - before)
"""


def test_codec_is_the_translators_text_side(tiny_checkpoint_path: Path) -> None:
    translator = Translator.load(tiny_checkpoint_path, device="cpu")
    codec = TextCodec.load(tiny_checkpoint_path)
    assert codec.encode(TEXTS) == translator.encode(TEXTS)
    ids = [[5, 6, 7], [], [8]]
    assert codec.decode(ids) == translator.decode(ids)
    assert (codec.src_lang, codec.tgt_lang, codec.metadata) == ("de", "en", {"step": 600})
    info = translator.info()
    assert codec.info() == {key: info[key] for key in codec.info()}  # all but how it decodes
    extra = set(info) - set(codec.info())
    assert not hasattr(codec, "model") and extra == {"device", "precision", "shortlist"}


def test_weights_are_left_out(tiny_checkpoint_path: Path) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint_path, weights=False)
    assert checkpoint.model_state == {} and checkpoint.training_state == {}
    assert checkpoint.tokenizers.src.vocab_size == checkpoint.config.src_vocab_size


def test_loading_does_not_read_the_weights(tiny_tokenizers: TokenizerPair, tmp_path: Path) -> None:
    """A checkpoint with about 190 MiB of weights costs the codec's process almost nothing."""
    config = ModelConfig(
        tiny_tokenizers.src.vocab_size,
        tiny_tokenizers.tgt.vocab_size,
        embedding_size=1024,
        hidden_size=1024,
        num_layers=6,
    )
    path = tmp_path / "big.pt"
    save_checkpoint(Checkpoint.from_model(Seq2Seq(config), tiny_tokenizers), path)
    assert path.stat().st_size > 180 * 2**20
    growth = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_GROWTH, str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert float(growth) < 20, f"peak RSS grew by {float(growth):.0f} MiB"
