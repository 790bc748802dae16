"""ModelConfig validation and its round trip through plain data."""

import pytest

from seq2seq import ModelConfig


def test_round_trip_through_dict() -> None:
    config = ModelConfig(100, 120, embedding_size=16, hidden_size=16, tie_embeddings=True)
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_unknown_key_is_an_error() -> None:
    data = ModelConfig(10, 10).to_dict() | {"attention": True}
    with pytest.raises(ValueError, match="unknown model config keys: attention"):
        ModelConfig.from_dict(data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tie_embeddings": True, "embedding_size": 8, "hidden_size": 16}, "tie_embeddings needs"),
        ({"num_layers": 0}, "num_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"hidden_size": 0}, "hidden_size"),
    ],
)
def test_invalid_values_are_rejected(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(10, 10, **changes)  # type: ignore[arg-type]
