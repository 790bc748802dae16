"""Fast paths and precisions: the same translations as the plain computation, or close in BLEU."""

from pathlib import Path

import pytest
import sacrebleu
import torch
from conftest import number_pairs
from torch.nn.utils.rnn import pack_padded_sequence

from seq2seq import BOS_ID, EOS_ID, ModelConfig, SearchOptions, Seq2Seq, Translator, load_checkpoint
from seq2seq.model import State
from seq2seq.precision import check_precision
from seq2seq.search import max_lengths

BLEU_TOLERANCE = 1.5
"""Largest BLEU difference from fp32 allowed for bf16 and int8 on the tiny model's test set."""
TEST_PAIRS = number_pairs(300, seed=7)


def plain_encode(model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor) -> State:
    """The encoder as textbooks write it: reverse, embed, one packed nn.LSTM call."""
    rows = zip(src, src_len.tolist(), strict=True)
    reversed_src = torch.stack([torch.cat([row[:n].flip(0), row[n:]]) for row, n in rows])
    embedded = model.encoder.embedding(reversed_src)  # [B, S, E]
    packed = pack_padded_sequence(embedded, src_len, batch_first=True, enforce_sorted=False)
    _, state = model.encoder.rnn(packed)
    return state  # type: ignore[no-any-return]


@torch.no_grad()
def plain_greedy(model: Seq2Seq, src_ids: list[int], max_len: int) -> list[int]:
    """One sentence at a time; every decoder step through nn.LSTM on a length-1 sequence."""
    state = plain_encode(model, torch.tensor([src_ids]), torch.tensor([len(src_ids)]))
    token, output = BOS_ID, []
    for _ in range(max_len):
        logits, state = model.decoder(torch.tensor([[token]]), state)  # [1, 1, V]
        token = int(logits.argmax())
        if token == EOS_ID:
            break
        output.append(token)
    return output


def random_model(seed: int, *, dropout: float = 0.0) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(ModelConfig(30, 30, embedding_size=8, hidden_size=16, dropout=dropout))


@pytest.fixture(scope="module")
def translators(tiny_checkpoint_path: Path) -> dict[str, Translator]:
    return {p: Translator.load(tiny_checkpoint_path, "cpu", p) for p in ("fp32", "bf16", "int8")}


def test_optimised_greedy_equals_the_plain_loop(translators: dict[str, Translator]) -> None:
    translator = translators["fp32"]
    sources = translator.encode([s for s, _ in TEST_PAIRS])
    limits = max_lengths(torch.tensor([len(s) for s in sources]), a=1.5, b=10, cap=256).tolist()
    plain = [
        plain_greedy(translator.model, ids, limit)
        for ids, limit in zip(sources, limits, strict=True)
    ]
    fast = translator.search(sources, SearchOptions(beam_size=1))
    assert [hyps[0].tokens for hyps in fast] == plain


def test_decode_step_matches_the_lstm_module() -> None:
    model = random_model(0).eval()
    tokens, state = torch.tensor([4, 9, 17]), (torch.randn(2, 3, 16), torch.randn(2, 3, 16))
    logits, (h, c) = model.decode_step(tokens, state)
    expected, (h2, c2) = model.decoder(tokens.unsqueeze(1), state)
    for fast, plain in ((logits, expected.squeeze(1)), (h, h2), (c, c2)):
        torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("train", [False, True])
def test_unpadded_batches_skip_packing_with_the_same_result(train: bool) -> None:
    model = random_model(1).train(train)
    src, src_len = torch.randint(4, 30, (3, 5)), torch.tensor([5, 5, 5])
    plain = plain_encode(model, src, src_len)
    fast = model.encode(src, src_len)
    for plain_part, fast_part in zip(plain, fast, strict=True):
        torch.testing.assert_close(fast_part, plain_part, rtol=1e-5, atol=1e-6)
    grads = [
        torch.autograd.grad(sum(part.sum() for part in state), model.encoder.embedding.weight)[0]
        for state in (plain, fast)
    ]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "int8"])
@pytest.mark.parametrize("beam_size", [1, 5])
def test_reduced_precision_bleu_is_close_to_fp32(
    translators: dict[str, Translator], precision: str, beam_size: int
) -> None:
    sources, references = [s for s, _ in TEST_PAIRS], [[t for _, t in TEST_PAIRS]]
    scores = {
        name: sacrebleu.corpus_bleu(
            translators[name].translate(sources, SearchOptions(beam_size=beam_size)), references
        ).score
        for name in ("fp32", precision)
    }
    assert scores["fp32"] > 80
    assert abs(scores[precision] - scores["fp32"]) <= BLEU_TOLERANCE


def test_precision_is_reported_and_the_checkpoint_untouched(
    translators: dict[str, Translator], tiny_checkpoint_path: Path
) -> None:
    assert translators["int8"].info()["precision"] == "int8"
    assert next(translators["bf16"].model.parameters()).dtype == torch.bfloat16
    reloaded = load_checkpoint(tiny_checkpoint_path).model_state
    assert all(t.dtype == torch.float32 for t in reloaded.values() if t.is_floating_point())


def test_unknown_or_unsupported_precision_is_refused(tiny_checkpoint_path: Path) -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        Translator.load(tiny_checkpoint_path, "cpu", "fp8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CPU only"):
        check_precision("int8", torch.device("cuda"))
