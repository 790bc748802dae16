"""Server settings: every field can be set from an environment variable `SEQ2SEQ_<FIELD>`.

`seq2seq serve` command-line options override the environment. Code reads settings through
`get_settings()`, which is cached; tests pass their own `Settings` to `create_app` or call
`get_settings.cache_clear()` after changing the environment.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda"]
Precision = Literal["fp32", "bf16", "int8"]
Batching = Literal["static", "continuous"]
Inference = Literal["thread", "process"]


class Settings(BaseSettings):
    """How the server runs: model, network, decoding defaults, batching, limits, security."""

    model_config = SettingsConfigDict(env_prefix="SEQ2SEQ_", extra="ignore")

    model: str = "models/multi30k_de_en.pt"
    """Checkpoint file loaded once at startup."""
    host: str = "127.0.0.1"
    """Interface to listen on; 0.0.0.0 inside a container."""
    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port."""
    device: Device = "auto"
    """'auto' is CUDA when available, else CPU."""
    precision: Precision = "fp32"
    """Inference precision; int8 is dynamic quantisation on CPU."""
    threads: int = Field(default=0, ge=0, le=256)
    """CPU threads for torch (in each inference process); 0: one per core, shared out among
    the inference processes."""

    beam_size: int = Field(default=1, ge=1, le=8)
    """Default beam width; 1 is greedy search (the fastest, used unless a request asks)."""
    max_beam_size: int = Field(default=8, ge=1, le=8)
    """Largest beam a request may ask for."""
    max_length: int = Field(default=256, ge=1, le=1024)
    """Longest translation in subwords."""
    split_sentences: bool = True
    """Cut each text at line breaks and sentence ends and translate the sentences (batched
    together); false: every text is one source sequence, truncated when too long."""

    batching: Batching = "static"
    """'static': gather requests, translate them in one call, answer them together;
    'continuous': greedy requests join the running decoder batch between steps (wider beams
    run as static batches between two steps). On a 2-core CPU the two reach about the same
    throughput (see BENCHMARKS.md); continuous answers a short sentence without waiting for
    the longest one of its batch."""
    inference: Inference = "thread"
    """Where requests are batched and decoded: 'thread', on threads of the server process;
    'process', in a child process that holds the model, so that HTTP handling and decoding do
    not take turns for one interpreter lock."""
    workers: int = Field(default=1, ge=1, le=64)
    """Inference processes (with inference 'process'), each with `threads` torch threads and
    its own batcher; requests go to the least busy one."""
    max_batch_size: int = Field(default=64, ge=1, le=1024)
    """Sentences decoded together; 1 disables batching."""
    max_batch_tokens: int = Field(default=6000, ge=1)
    """Source subwords per static batch (every batch of a wider beam, and all batches with
    batching 'static')."""
    max_wait_ms: float = Field(default=10.0, ge=0, le=10_000)
    """How long the first request of a static batch waits for company (only while others are
    active); continuous batching never waits."""
    rejoin_wait_ms: float = Field(default=50.0, ge=0, le=10_000)
    """How long a batch smaller than the previous one waits for that one's clients; 0: never."""
    max_queue_size: int = Field(default=256, ge=1)
    """Requests waiting for translation before new ones get 503."""
    request_timeout_s: float = Field(default=30.0, gt=0)
    """A request not answered within this time gets 504."""
    retry_after_s: int = Field(default=1, ge=0)
    """`Retry-After` header value of a 503."""

    max_texts: int = Field(default=64, ge=1, le=10_000)
    """Texts per request."""
    max_text_chars: int = Field(default=2000, ge=1, le=1_000_000)
    """Characters per text."""
    max_body_bytes: int = Field(default=1_000_000, ge=1)
    """Request body size; larger bodies get 413."""

    api_key: SecretStr | None = None
    """When set, /translate needs `X-API-Key: KEY` or `Authorization: Bearer KEY`."""
    cors_origins: list[str] = []
    """Origins allowed by CORS (JSON list in the environment); empty disables CORS."""
    log_level: str = "info"
    """uvicorn log level."""

    @model_validator(mode="after")
    def _workers_are_processes(self) -> Settings:
        if self.workers > 1 and self.inference != "process":
            raise ValueError(f"workers={self.workers} needs inference 'process'")
        return self

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        """`SEQ2SEQ_API_KEY=` (empty, as compose passes an unset variable) means no key."""
        return None if value == "" else value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
