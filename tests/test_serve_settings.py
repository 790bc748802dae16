"""Server settings: defaults, environment variables, the cached getter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from serve.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_defaults() -> None:
    settings = Settings()
    assert (settings.host, settings.port, settings.device, settings.precision) == (
        "127.0.0.1",
        8000,
        "auto",
        "fp32",
    )
    assert settings.beam_size == 1 and settings.api_key is None and settings.cors_origins == []
    assert (settings.model, settings.models, settings.max_loaded) == ([], "models", 0)


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQ2SEQ_MODEL", "/models/x.pt, /models/y.pt")
    monkeypatch.setenv("SEQ2SEQ_PORT", "9001")
    monkeypatch.setenv("SEQ2SEQ_PRECISION", "int8")
    monkeypatch.setenv("SEQ2SEQ_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("SEQ2SEQ_API_KEY", "sesame")
    monkeypatch.setenv("SEQ2SEQ_CORS_ORIGINS", '["http://a.example"]')
    settings = get_settings()
    assert settings.model == ["/models/x.pt", "/models/y.pt"]
    assert (settings.port, settings.precision) == (9001, "int8")
    assert settings.max_batch_size == 16 and settings.cors_origins == ["http://a.example"]
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sesame"
    assert "sesame" not in repr(settings)


def test_empty_api_key_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQ2SEQ_API_KEY", "")  # what compose passes for an unset variable
    assert Settings().api_key is None


def test_getter_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("SEQ2SEQ_PORT", "9002")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().port == 9002


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("SEQ2SEQ_PORT", "eighty", "valid integer"),
        ("SEQ2SEQ_DEVICE", "tpu", "'auto', 'cpu'"),
        ("SEQ2SEQ_BEAM_SIZE", "20", "less than or equal to 8"),
        ("SEQ2SEQ_IDLE_UNLOAD_S", "-1", "greater than or equal to 0"),
        ("SEQ2SEQ_INFERENCE", "gpu", "'thread' or 'process'"),
    ],
)
def test_bad_environment_values_are_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, reason: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=reason):
        Settings()


def test_every_field_has_its_documentation() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description and field.description.endswith((".", ")")), name
