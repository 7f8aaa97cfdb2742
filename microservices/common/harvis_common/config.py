"""Settings shared by every service, read from the environment (and `.env`).

Each service subclasses `ServiceSettings` with its own fields. Names are the
environment variable names (case-insensitive); `.env.example` documents them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TypeVar

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_file_encoding="utf-8")

    # The service's own name: the audience its internal-auth tokens must carry.
    service_name: str = "service"
    log_level: str = "INFO"
    # Ed25519 public key (base64url, 32 raw bytes) that verifies X-Internal-Auth.
    internal_auth_public_key: str = ""
    # Allowed clock skew when checking internal tokens' iat/exp, in seconds.
    internal_auth_leeway_s: int = Field(default=5, ge=0, le=60)


S = TypeVar("S", bound=BaseSettings)


@lru_cache
def _cached(cls: type[S]) -> S:
    return cls()


def get_settings(cls: type[S]) -> S:
    """One settings instance per class per process (environment read once)."""
    return _cached(cls)
