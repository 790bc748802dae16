"""Reading layers step by step: GRU steps equal nn.GRU's, every architecture's hand-over and
decoder equal the model's own, the GRU's gates explain its h."""

from typing import Any

import pytest
import torch

from seq2seq import BOS_ID, ModelConfig, Seq2Seq
from seq2seq.gates import GRU_SIGNALS, read_layers

VARIANTS: dict[str, dict[str, Any]] = {
    "lstm": {},
    "gru": {"cell": "gru"},
    "lstm bidirectional": {"bidirectional_encoder": True},
    "gru bidirectional": {"cell": "gru", "bidirectional_encoder": True},
    "lstm residual": {"residual": True, "num_layers": 3},
    "gru bidirectional residual": {"cell": "gru", "bidirectional_encoder": True, "residual": True},
}
SOURCE, TARGET = [5, 9, 11, 4, 27, 6], [BOS_ID, 7, 8, 12, 29]


def model_of(options: dict[str, Any]) -> Seq2Seq:
    torch.manual_seed(3)
    sizes = {"embedding_size": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.0}
    return Seq2Seq(ModelConfig(30, 30, **(sizes | options))).eval()


@pytest.mark.parametrize("layers", [1, 2])
def test_every_gru_step_equals_nn_gru(layers: int) -> None:
    model = model_of({"cell": "gru", "num_layers": layers, "reverse_source": False})
    encoder, decoder, _ = read_layers(model, SOURCE, TARGET)
    with torch.no_grad():
        embedded = model.encoder.embedding(torch.tensor([SOURCE]))  # [1, S, E]
        outputs = [model.encoder.rnn(embedded[:, :n])[1] for n in range(1, len(SOURCE) + 1)]
    for step, h in enumerate(outputs):  # [L, 1, H]: the final state of every prefix
        for layer, signals in enumerate(encoder):
            torch.testing.assert_close(signals["hidden"][step], h[layer, 0], atol=1e-5, rtol=0)
    assert len(decoder) == layers and tuple(decoder[0]) == GRU_SIGNALS


@pytest.mark.parametrize("name", VARIANTS)
def test_the_read_hand_over_and_decoder_are_the_models_own(name: str) -> None:
    model = model_of(VARIANTS[name])
    read = SOURCE[::-1]  # the order a reversing encoder reads in
    encoder, decoder, logits = read_layers(model, read, TARGET)
    with torch.no_grad():
        state = model.encode(torch.tensor([SOURCE]), torch.tensor([len(SOURCE)]))
        expected, _ = model.decoder(torch.tensor([TARGET]), state)  # [1, T, V]
    torch.testing.assert_close(logits, expected[0], atol=1e-5, rtol=0)
    width = 32 if model.config.bidirectional_encoder else 16
    assert encoder[0]["hidden"].shape == (len(SOURCE), width)
    assert len(decoder) == model.config.num_layers


def test_gru_gates_are_probabilities_and_explain_the_hidden_state() -> None:
    encoder, _, _ = read_layers(model_of({"cell": "gru", "num_layers": 1}), SOURCE, [BOS_ID])
    signals = encoder[0]
    for gate in ("reset", "update"):
        assert bool(((signals[gate] > 0) & (signals[gate] < 1)).all())
    previous = torch.cat([torch.zeros(1, 16), signals["hidden"][:-1]])  # [T, H]
    update = signals["update"]
    rebuilt = (1 - update) * signals["candidate"] + update * previous
    torch.testing.assert_close(signals["hidden"], rebuilt)
