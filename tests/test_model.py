"""The encoder-decoder: shapes, separate weights, the state hand-over, packing, overfitting."""

from typing import Any

import pytest
import torch
from conftest import fit, make_batch

from seq2seq import ModelConfig, Seq2Seq
from seq2seq.model import reverse_padded

CONFIG = ModelConfig(20, 24, embedding_size=8, hidden_size=16, num_layers=2, dropout=0.0)
VARIANTS = {
    "lstm": {},
    "gru": {"cell": "gru"},
    "bidirectional": {"bidirectional_encoder": True},
    "gru bidirectional": {"cell": "gru", "bidirectional_encoder": True},
    "residual": {"residual": True, "num_layers": 3},
    "gru bidirectional residual": {"cell": "gru", "bidirectional_encoder": True, "residual": True},
}
"""Model options the tests run every variant of the architecture with."""


def variant(name: str, **changes: Any) -> Seq2Seq:
    torch.manual_seed(0)
    options = {"embedding_size": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.0}
    config = ModelConfig(20, 24, **(options | VARIANTS[name] | changes))
    return Seq2Seq(config).eval()


@pytest.fixture
def model() -> Seq2Seq:
    torch.manual_seed(0)
    return Seq2Seq(CONFIG).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    src, src_len, tgt_in, _ = make_batch([[5, 6, 7], [8, 9], [10, 11, 12, 13]], [[4], [5, 6], [7]])
    return src, src_len, tgt_in


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes(name: str) -> None:
    model, (src, src_len, tgt_in) = variant(name), batch()
    layers = model.config.num_layers
    state = model.encode(src, src_len)
    assert len(state) == (1 if model.config.cell == "gru" else 2)
    assert all(part.shape == (layers, 3, 16) for part in state)
    logits, next_state = model.decode_step(tgt_in[:, 0], state)
    assert logits.shape == (3, 24) and [p.shape for p in next_state] == [p.shape for p in state]
    assert model(src, src_len, tgt_in).shape == (3, 3, 24)


@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])
@pytest.mark.parametrize("name", VARIANTS)
def test_decode_step_equals_the_decoder_over_the_sequence(name: str, grad: bool) -> None:
    model, (src, src_len, tgt_in) = variant(name), batch()
    with torch.set_grad_enabled(grad):  # without: an LSTM looks its input gates up
        assert_steps_match(model, src, src_len, tgt_in)


def assert_steps_match(
    model: Seq2Seq, src: torch.Tensor, src_len: torch.Tensor, tgt_in: torch.Tensor
) -> None:
    state = model.encode(src, src_len)
    expected, expected_state = model.decoder(tgt_in, state)  # [B, T, V]
    for position in range(tgt_in.size(1)):
        logits, state = model.decode_step(tgt_in[:, position], state)
        torch.testing.assert_close(logits, expected[:, position], atol=1e-5, rtol=0)
    for part, expected_part in zip(state, expected_state, strict=True):
        torch.testing.assert_close(part, expected_part, atol=1e-5, rtol=0)


def test_looked_up_input_gates_follow_changed_weights() -> None:
    model, (src, src_len, tgt_in) = variant("lstm"), batch()
    with torch.no_grad():
        model.decode_step(tgt_in[:, 0], model.encode(src, src_len))  # the table is made
        model.decoder.rnn.weight_ih_l0.mul_(-1.5)  # as an optimizer step changes it in place
        model.decoder.embedding.weight.add_(0.5)
        assert_steps_match(model, src, src_len, tgt_in)
        model.load_state_dict(variant("lstm", embedding_size=8).state_dict())
        assert_steps_match(model, src, src_len, tgt_in)


@pytest.mark.parametrize("name", VARIANTS)
def test_encoder_and_decoder_share_no_parameter(name: str) -> None:
    model = variant(name)
    encoder = {p.data_ptr() for p in model.encoder.parameters()}
    decoder = {p.data_ptr() for p in model.decoder.parameters()}
    assert encoder and decoder and not encoder & decoder


def test_tied_embeddings_share_only_inside_the_decoder() -> None:
    tied = Seq2Seq(ModelConfig(20, 24, embedding_size=16, hidden_size=16, tie_embeddings=True))
    assert tied.decoder.output.weight is tied.decoder.embedding.weight
    encoder = {p.data_ptr() for p in tied.encoder.parameters()}
    assert not encoder & {p.data_ptr() for p in tied.decoder.parameters()}


@pytest.mark.parametrize("name", VARIANTS)
def test_only_the_encoders_final_state_reaches_the_decoder(name: str) -> None:
    model, (src, src_len, tgt_in) = variant(name), batch()
    expected = model(src, src_len, tgt_in)
    seen: dict[str, Any] = {}

    def scramble(_module: Any, _inputs: Any, output: Any) -> Any:
        """The encoder's per-step outputs replaced by noise, its final states kept."""
        outputs, final = output
        noise = torch.randn_like(outputs.data)
        seen["final"] = final
        return (outputs._replace(data=noise) if hasattr(outputs, "data") else noise), final

    def record(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        seen["decoder"] = (args, kwargs)

    model.encoder.rnn.register_forward_hook(scramble)
    model.decoder.register_forward_pre_hook(record, with_kwargs=True)
    assert torch.equal(model(src, src_len, tgt_in), expected)
    model.decoder(tgt_in, model.encode(src, src_len))  # what the decoder is given
    (tokens, state), kwargs = seen["decoder"]
    assert torch.equal(tokens, tgt_in) and not kwargs
    final = seen["final"] if isinstance(seen["final"], tuple) else (seen["final"],)
    if model.encoder.bridge is not None:
        final = model.encoder.bridge(final)
    for handed, part in zip(state, final, strict=True):
        assert torch.equal(handed, part)


@pytest.mark.parametrize("name", VARIANTS)
def test_padding_does_not_change_the_final_state(name: str) -> None:
    model = variant(name)
    alone = model.encode(torch.tensor([[5, 6, 7]]), torch.tensor([3]))
    src, src_len, _ = batch()  # row 0 is the same sentence, padded to length 4
    padded = model.encode(src, src_len)
    for one, many in zip(alone, padded, strict=True):
        torch.testing.assert_close(one[:, 0], many[:, 0])


def test_one_residual_layer_is_the_default_model() -> None:
    plain, residual = variant("lstm", num_layers=1), variant("residual", num_layers=1)
    assert plain.state_dict().keys() == residual.state_dict().keys()
    src, src_len, tgt_in = batch()
    residual.load_state_dict(plain.state_dict())
    assert torch.equal(residual(src, src_len, tgt_in), plain(src, src_len, tgt_in))


def test_only_a_bidirectional_encoder_has_a_bridge_and_a_gru_has_no_cell_bridge() -> None:
    assert variant("lstm").encoder.bridge is None
    bridge = variant("bidirectional").encoder.bridge
    assert bridge is not None and bridge.c is not None and len(bridge.h) == 2
    gru_bridge = variant("gru bidirectional").encoder.bridge
    assert gru_bridge is not None and gru_bridge.c is None


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


@pytest.mark.parametrize("name", VARIANTS)
def test_overfits_one_batch(name: str) -> None:
    model = variant(name).train()
    src = [[5, 6, 7, 8], [9, 10], [11, 12, 13], [14, 15, 16, 17, 18]]
    tgt = [[4, 5, 6], [7, 8, 9, 10], [11], [12, 13]]
    loss = fit(model, src, tgt, steps=400, batch_size=4, lr=1e-2)
    assert loss < 0.05


def test_dropout_only_while_training() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(20, 24, embedding_size=8, hidden_size=16, dropout=0.5))
    src, src_len, tgt_in = batch()
    assert torch.equal(model.eval()(src, src_len, tgt_in), model(src, src_len, tgt_in))
    assert not torch.equal(model.train()(src, src_len, tgt_in), model(src, src_len, tgt_in))
