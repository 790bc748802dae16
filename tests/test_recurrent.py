"""Recurrent stacks: the residual sum, packing, one step equals the stack, quantized fallback."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from seq2seq import ModelConfig, Seq2Seq
from seq2seq.precision import quantize_int8
from seq2seq.recurrent import ResidualStack, as_hidden, as_state, step_layers, step_weights


def stack(cell: str, *, layers: int = 3, bidirectional: bool = False) -> ResidualStack:
    torch.manual_seed(0)
    return ResidualStack(cell, 6, 8, layers, dropout=0.0, bidirectional=bidirectional).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_layer_that_outputs_zero_passes_its_input_on(cell: str) -> None:
    residual = stack(cell, layers=2)
    with torch.no_grad():
        for parameter in residual.layers[1].parameters():
            parameter.zero_()  # this layer's h stays 0 from a zero state
    inputs = torch.randn(3, 5, 6)  # [B, T, I]
    below, _ = residual.layers[0](inputs)  # [B, T, H]
    outputs, final = residual(inputs)
    torch.testing.assert_close(outputs, below)
    assert as_state(final)[0][1].abs().max() == 0  # the second layer's final h


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_batches_give_each_sentence_its_own_final_state(
    cell: str, bidirectional: bool
) -> None:
    residual = stack(cell, bidirectional=bidirectional)
    lengths = torch.tensor([5, 2, 4])
    inputs = torch.randn(3, 5, 6)  # [B, T, I], padded beyond each length
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    together = as_state(residual(packed)[1])  # [L*D, B, H] each
    for row, length in enumerate(lengths.tolist()):
        alone = as_state(residual(inputs[row : row + 1, :length])[1])  # [L*D, 1, H] each
        for part, single in zip(together, alone, strict=True):
            torch.testing.assert_close(part[:, row], single[:, 0], atol=1e-6, rtol=0)
    assert together[0].shape == (3 * (2 if bidirectional else 1), 3, 8)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_step_equals_the_stack_on_a_one_token_sequence(cell: str) -> None:
    residual = stack(cell)
    inputs = torch.randn(4, 6)  # [B, I]
    state = tuple(torch.randn(3, 4, 8) for _ in range(2 if cell == "lstm" else 1))
    outputs, final = residual(inputs.unsqueeze(1), as_hidden(state))  # [B, 1, H]
    weights = step_weights(residual)
    assert weights is not None
    top, stepped = step_layers(cell, weights, inputs, state, residual=True, dropout=0.0)
    torch.testing.assert_close(top, outputs[:, 0], atol=1e-6, rtol=0)
    for part, expected in zip(stepped, as_state(final), strict=True):
        torch.testing.assert_close(part, expected, atol=1e-6, rtol=0)


def test_dropout_between_layers_only_while_training() -> None:
    residual = ResidualStack("lstm", 6, 8, 2, dropout=0.5, bidirectional=False)
    inputs = torch.randn(3, 5, 6)  # [B, T, I]
    assert torch.equal(residual.eval()(inputs)[0], residual(inputs)[0])
    assert not torch.equal(residual.train()(inputs)[0], residual(inputs)[0])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_quantized_stacks_decode_as_sequences(cell: str) -> None:
    torch.manual_seed(0)
    config = ModelConfig(
        20, 24, embedding_size=8, hidden_size=8, num_layers=2, cell=cell, residual=True
    )
    model = Seq2Seq(config).eval()
    quantized = quantize_int8(model)
    assert step_weights(model.decoder.rnn) is not None
    assert step_weights(quantized.decoder.rnn) is None
    src, src_len = torch.tensor([[5, 6, 7]]), torch.tensor([3])
    logits, _ = quantized.decode_step(torch.tensor([2]), quantized.encode(src, src_len))
    expected, _ = model.decode_step(torch.tensor([2]), model.encode(src, src_len))
    torch.testing.assert_close(logits, expected, atol=0.05, rtol=0)
