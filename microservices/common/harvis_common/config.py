"""Settings shared by every service, read from the environment (and `.env`).

Each service subclasses `ServiceSettings` with its own fields. Names are the
environment variable names (case-insensitive); `.env.example` documents them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    # The service's own name: the audience its internal-auth tokens must carry.
    service_name: str = "service"
    # core-api's internal API (harvis_common.core_client): the chat history, token exchange, and
    # the audit trail every service reports what it did for a user to.
    core_api_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    # Ed25519 public key (base64url, 32 raw bytes) that verifies X-Internal-Auth.
    internal_auth_public_key: str = ""
    # Allowed clock skew when checking internal tokens' iat/exp, in seconds.
    internal_auth_leeway_s: int = Field(default=5, ge=0, le=60)


class ReplicaSettings(BaseSettings):
    """For a service whose sessions live in one replica (mix into its Settings)."""

    # This replica's ordinal (0 with one replica; a StatefulSet pod's index): it goes into the
    # session ids (harvis_common.replicas), so the gateway sends a session's requests here.
    replica_ordinal: int = Field(default=0, ge=0, le=0xFFF)


class LLMSettings(BaseSettings):
    """The LLM backend, for every service that talks to one (mix into its Settings).

    "ollama": Ollama's native API at OLLAMA_URL; "openai": any OpenAI-compatible
    server at OPENAI_API_BASE (llama.cpp, vLLM, LM Studio, OpenAI).
    """

    llm_provider: str = "ollama"
    ollama_url: str = "http://127.0.0.1:11434"
    openai_api_base: str = ""
    openai_api_key: str = ""
    # Used when a request names no model or one the backend lacks ("" = the first one listed).
    default_model: str = ""
    llm_connect_timeout_s: float = Field(default=5.0, gt=0)
    llm_read_timeout_s: float = Field(default=300.0, gt=0)  # per streamed piece; the first includes loading
    llm_request_timeout_s: float = Field(default=8.0, gt=0)  # model lists (the UI gives up after 10 s)

    @field_validator("llm_provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in ("ollama", "openai"):
            raise ValueError("LLM_PROVIDER must be 'ollama' or 'openai'")
        return value

    @property
    def llm_base_url(self) -> str:
        return self.openai_api_base if self.llm_provider == "openai" else self.ollama_url


S = TypeVar("S", bound=BaseSettings)


@lru_cache
def _cached(cls: type[S]) -> S:
    return cls()


def get_settings(cls: type[S]) -> S:
    """One settings instance per class per process (environment read once)."""
    return _cached(cls)


def checkout_state_dir(settings_file: str, name: str) -> Path:
    """The default of a service's `*_DIR` setting: `<checkout>/.dev/<name>` when the service
    runs from a checkout (`microservices/<service>/<package>/settings.py`, as `make dev` runs
    it), else `/data/<name>`. Images get the setting explicitly (compose sets it to a volume);
    this only must not fail there, where the package sits at /app/<package>."""
    parents = Path(settings_file).resolve().parents
    if len(parents) > 3 and parents[2].name == "microservices":
        return parents[3] / ".dev" / name
    return Path("/data") / name
