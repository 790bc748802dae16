"""The encoder-decoder: shapes, separate weights, the state hand-over, packing, overfitting."""

import pytest
import torch
from conftest import fit, make_batch

from seq2seq import ModelConfig, Seq2Seq
from seq2seq.model import reverse_padded

CONFIG = ModelConfig(20, 24, embedding_size=8, hidden_size=16, num_layers=2, dropout=0.0)


@pytest.fixture
def model() -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(CONFIG).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    src, src_len, tgt_in, _ = make_batch([[5, 6, 7], [8, 9], [10, 11, 12, 13]], [[4], [5, 6], [7]])
    return src, src_len, tgt_in


def test_shapes(model: Seq2Seq) -> None:
    src, src_len, tgt_in = batch()
    h, c = model.encode(src, src_len)
    assert h.shape == c.shape == (2, 3, 16)
    logits, (h2, _) = model.decode_step(tgt_in[:, 0], (h, c))
    assert logits.shape == (3, 24) and h2.shape == (2, 3, 16)
    assert model(src, src_len, tgt_in).shape == (3, 3, 24)


def test_encoder_and_decoder_share_no_parameter(model: Seq2Seq) -> None:
    encoder = {p.data_ptr() for p in model.encoder.parameters()}
    decoder = {p.data_ptr() for p in model.decoder.parameters()}
    assert encoder and decoder and not encoder & decoder


def test_tied_embeddings_share_only_inside_the_decoder() -> None:
    tied = Seq2Seq(ModelConfig(20, 24, embedding_size=16, hidden_size=16, tie_embeddings=True))
    assert tied.decoder.output.weight is tied.decoder.embedding.weight
    encoder = {p.data_ptr() for p in tied.encoder.parameters()}
    assert not encoder & {p.data_ptr() for p in tied.decoder.parameters()}


def test_decoder_starts_from_the_encoders_final_state(model: Seq2Seq) -> None:
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    model.encoder.lstm.register_forward_hook(lambda _m, _i, out: seen.update(encoder=out[1]))
    model.decoder.lstm.register_forward_hook(lambda _m, inputs, _o: seen.update(decoder=inputs[1]))
    model(*batch())
    for encoder_part, decoder_part in zip(seen["encoder"], seen["decoder"], strict=True):
        assert torch.equal(encoder_part, decoder_part)


def test_padding_does_not_change_the_final_state(model: Seq2Seq) -> None:
    alone = model.encode(torch.tensor([[5, 6, 7]]), torch.tensor([3]))
    src, src_len, _ = batch()  # row 0 is the same sentence, padded to length 4
    padded = model.encode(src, src_len)
    for one, many in zip(alone, padded, strict=True):
        torch.testing.assert_close(one[:, 0], many[:, 0])


def test_reverse_padded_keeps_padding_in_place() -> None:
    tokens = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]])
    reversed_tokens = reverse_padded(tokens, torch.tensor([3, 4]))
    assert reversed_tokens.tolist() == [[3, 2, 1, 0], [7, 6, 5, 4]]


def test_reversed_source_reads_right_to_left() -> None:
    torch.manual_seed(0)
    forward = Seq2Seq(ModelConfig(20, 24, embedding_size=8, hidden_size=16, reverse_source=False))
    backward = Seq2Seq(ModelConfig(20, 24, embedding_size=8, hidden_size=16))
    backward.load_state_dict(forward.state_dict())
    src, src_len = torch.tensor([[5, 6, 7]]), torch.tensor([3])
    torch.testing.assert_close(
        backward.eval().encode(src, src_len)[0],
        forward.eval().encode(src.flip(1), src_len)[0],
    )


def test_uniform_initialisation(model: Seq2Seq) -> None:
    for name, parameter in model.named_parameters():
        assert parameter.abs().max() <= CONFIG.init_range, name
    assert model.encoder.embedding.weight[0].abs().sum() == 0


def test_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(CONFIG)
    src = [[5, 6, 7, 8], [9, 10], [11, 12, 13], [14, 15, 16, 17, 18]]
    tgt = [[4, 5, 6], [7, 8, 9, 10], [11], [12, 13]]
    loss = fit(model, src, tgt, steps=200, batch_size=4, lr=1e-2)
    assert loss < 0.05


def test_dropout_only_while_training() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(20, 24, embedding_size=8, hidden_size=16, dropout=0.5))
    src, src_len, tgt_in = batch()
    assert torch.equal(model.eval()(src, src_len, tgt_in), model(src, src_len, tgt_in))
    assert not torch.equal(model.train()(src, src_len, tgt_in), model(src, src_len, tgt_in))
