"""docker-compose.yml and the Dockerfile: the structure a GPU server with a model volume needs.

No Docker engine runs in CI; the files are checked as data, and with `docker compose config`
(or the older `docker-compose config`) when a client that can do it without an engine exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


class ComposeLoader(yaml.SafeLoader):
    """Safe YAML that also reads Compose's `!reset` / `!override` tags."""


ComposeLoader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: (
        {"tag": suffix, "value": loader.construct_mapping(node)}
        if isinstance(node, yaml.MappingNode)
        else loader.construct_scalar(node)
    ),
)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load((ROOT / name).read_text(), Loader=ComposeLoader)
    return data


def test_serve_service_has_gpu_volume_and_healthcheck() -> None:
    serve = load("docker-compose.yml")["services"]["serve"]
    assert serve["build"] == "." and serve["ports"] == ["${SEQ2SEQ_PUBLISH_PORT:-8000}:8000"]
    device = serve["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert "models:/models" in serve["volumes"]
    assert serve["environment"]["SEQ2SEQ_MODELS"] == "/models"  # every model of the volume
    assert serve["environment"]["SEQ2SEQ_HOST"] == "0.0.0.0"
    assert any("/health" in part for part in serve["healthcheck"]["test"])


def test_train_service_is_a_profile_writing_the_served_models() -> None:
    compose = load("docker-compose.yml")
    train, serve = compose["services"]["train"], compose["services"]["serve"]
    assert train["profiles"] == ["train"] and "models" in compose["volumes"]
    assert "models:/models" in train["volumes"]
    command = train["command"]
    assert command[:2] == ["seq2seq", "train-models"]
    assert command[command.index("--models") + 1] == serve["environment"]["SEQ2SEQ_MODELS"]
    assert command[command.index("--runs") + 1].startswith("/models/")  # resumable on the volume


def interpolated(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:+replacement}` on every string value."""

    def substitute(match: re.Match[str]) -> str:
        current, operator, word = env.get(match[1], ""), match[2], match[3]
        if operator == ":-":
            return current or word
        if operator == ":+":
            return word if current else ""
        return current

    if isinstance(value, dict):
        return {key: interpolated(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolated(item, env) for item in value]
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)(?:(:[-+])([^}]*))?\}", substitute, value)
    return value


def test_train_service_reads_a_given_data_directory_else_the_hub() -> None:
    compose = load("docker-compose.yml")
    for env, data, source in (
        ({}, "", "no-data"),
        ({"MULTI30K_DIR": "/srv/multi30k"}, "/data/multi30k", "/srv/multi30k"),
    ):
        train = interpolated(compose["services"]["train"], env)
        assert train["environment"]["SEQ2SEQ_DATA"] == data  # empty: the preset's hub mirror
        assert f"{source}:/data/multi30k:ro" in train["volumes"]
    assert "no-data" in compose["volumes"]  # a named volume, never a host path created by Docker


def test_cpu_override_drops_the_gpu_reservation() -> None:
    services = load("docker-compose.cpu.yml")["services"]
    assert services["serve"]["deploy"] == {"tag": "reset", "value": {}}
    assert services["train"]["deploy"] == {"tag": "reset", "value": {}}


def test_dockerfile_is_cuda_capable_and_serves_the_volume_model() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = next(line for line in text.splitlines() if line.startswith("FROM "))
    assert "cuda" in base and "runtime" in base
    assert "SEQ2SEQ_MODELS=/models" in text and "SEQ2SEQ_HOST=0.0.0.0" in text
    assert "SEQ2SEQ_DATA" not in text  # without a mounted copy, the presets read the hub
    assert 'CMD ["seq2seq", "serve"]' in text and "/health" in text
    for package in ("seq2seq", "training", "serve"):
        assert f"COPY {package} ./{package}" in text


def compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    probe = [docker or "docker", "compose", "version"]
    if docker and subprocess.run(probe, capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_client_accepts_the_file() -> None:
    command = compose_command()
    if command is None:
        pytest.skip("no docker compose client installed")
    result = subprocess.run(
        [*command, "-f", "docker-compose.yml", "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
