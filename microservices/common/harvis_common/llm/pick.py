"""Which model serves a request: `ModelPicker` over the backend's (briefly cached) model list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from .base import LLMClient
from .errors import LLMError
from .results import ModelInfo


def match_model(name: str, names: Sequence[str]) -> str | None:
    """`name` as the backend lists it (Ollama adds `:latest` to untagged names)."""
    if name in names:
        return name
    if ":" not in name and f"{name}:latest" in names:
        return f"{name}:latest"
    return None


class ModelPicker:
    """Which model serves a request: the requested one when the backend has it, else the
    configured default, else the first one listed (the front end sends `mistral` when the
    user picked nothing). The backend's model list is cached for `ttl_s`."""

    def __init__(self, client: LLMClient, default_model: str = "", ttl_s: float = 10.0) -> None:
        self.client = client
        self.default_model = default_model
        self.ttl_s = ttl_s
        self._models: list[ModelInfo] = []
        self._models_at = 0.0
        self._lock = asyncio.Lock()

    async def models(self, fresh: bool = False) -> list[ModelInfo]:
        """The backend's models (cached briefly); raises LLMError when it is down."""
        if not fresh and self._cached():
            return self._models
        async with self._lock:
            if not fresh and self._cached():  # another caller listed them meanwhile
                return self._models
            self._models, self._models_at = await self.client.list_models(), time.monotonic()
            return self._models

    def _cached(self) -> bool:
        return bool(self._models) and time.monotonic() - self._models_at < self.ttl_s

    async def pick(self, requested: str | None, preferred_default: str = "") -> tuple[str, bool]:
        """(model, fell_back): fell_back is true when `requested` was empty or unknown."""
        names = [m.name for m in await self.models()]
        if not names:
            provider = getattr(self.client, "provider", "LLM")
            raise LLMError(f"The {provider} backend has no models: pull one (e.g. `ollama pull llama3.2`)")
        found = match_model(requested, names) if requested else None
        if found:
            return found, False
        for candidate in (preferred_default, self.default_model):
            match = match_model(candidate, names) if candidate else None
            if match:
                return match, True
        return names[0], True
