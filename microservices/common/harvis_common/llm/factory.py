"""Which client a service gets: by provider name (`create_llm_client`) or from its
`LLMSettings` (`client_from_settings`)."""

from __future__ import annotations

from typing import Any

import aiohttp

from ..config import LLMSettings
from .ollama import OllamaClient
from .openai import OpenAIClient

PROVIDERS = ("ollama", "openai")


def create_llm_client(
    provider: str,
    base_url: str,
    *,
    api_key: str | None = None,
    connect_timeout_s: float = 5.0,
    read_timeout_s: float = 300.0,
    request_timeout_s: float = 30.0,
    session: aiohttp.ClientSession | None = None,
) -> OllamaClient | OpenAIClient:
    """`provider` is "ollama" (Ollama's native API) or "openai" (an OpenAI-compatible server)."""
    kw: dict[str, Any] = {
        "connect_timeout_s": connect_timeout_s,
        "read_timeout_s": read_timeout_s,
        "request_timeout_s": request_timeout_s,
        "session": session,
    }
    name = provider.strip().lower()
    if name == "ollama":
        return OllamaClient(base_url, **kw)
    if name in ("openai", "openai-compatible", "llamacpp", "llama.cpp", "vllm", "lmstudio"):
        return OpenAIClient(base_url, api_key=api_key, **kw)
    raise ValueError(f"unknown LLM provider {provider!r}: choose one of {', '.join(PROVIDERS)}")


def client_from_settings(settings: LLMSettings, **overrides: Any) -> OllamaClient | OpenAIClient:
    """The client for a service's `LLMSettings` (harvis_common.config)."""
    kw: dict[str, Any] = {
        "api_key": settings.openai_api_key or None if settings.llm_provider == "openai" else None,
        "connect_timeout_s": settings.llm_connect_timeout_s,
        "read_timeout_s": settings.llm_read_timeout_s,
        "request_timeout_s": settings.llm_request_timeout_s,
        **overrides,
    }
    return create_llm_client(settings.llm_provider, settings.llm_base_url, **kw)
