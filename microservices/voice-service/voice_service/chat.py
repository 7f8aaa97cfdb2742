"""mic-chat's conversation side: the LLM (harvis_common.llm) and the user's chat history,
written through core-api's internal history API (`/internal/history/…`) with the
X-Internal-Auth token the gateway gave this request (core-api acts as that token's user)."""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp

from harvis_common.internal_auth import HEADER
from harvis_common.llm import LLMClient, LLMError, client_from_settings

from .settings import Settings

log = logging.getLogger("voice.chat")

SYSTEM_PROMPT = (
    "You are Harvis, a helpful voice assistant. The user spoke to you; answer in a few clear "
    "sentences that read well aloud (no tables, no code blocks, no markdown)."
)
CONTEXT_MESSAGES = 20
MODELS_TTL_S = 30.0


class HistoryError(Exception):
    """The chat history could not be read or written."""


class HistoryClient:
    """core-api's internal history API."""

    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=3)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def recent(self, token: str, session_id: str) -> list[dict[str, Any]]:
        """Earlier messages of `session_id` (oldest first); [] for an unknown session."""
        url = f"{self.base_url}/internal/history/sessions/{session_id}/messages"
        try:
            async with self._http().get(url, params={"limit": str(CONTEXT_MESSAGES)}, headers={HEADER: token}) as resp:
                if resp.status == 404:
                    return []
                if resp.status >= 400:
                    raise HistoryError(f"chat history answered {resp.status}")
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HistoryError(f"chat history unreachable: {exc}") from exc
        return [m for m in body.get("messages") or [] if m.get("role") in ("user", "assistant")]

    async def save_exchange(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._http().post(
                f"{self.base_url}/internal/history/exchange", json=body, headers={HEADER: token}
            ) as resp:
                if resp.status >= 400:
                    raise HistoryError(f"chat history answered {resp.status}: {(await resp.text())[:300]}")
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise HistoryError(f"chat history unreachable: {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class Conversation:
    """Picks the model and asks the LLM."""

    def __init__(self, settings: Settings, llm: LLMClient | None = None) -> None:
        self.settings = settings
        self.llm = llm or client_from_settings(settings)
        self._models: list[str] = []
        self._models_at = 0.0

    async def pick_model(self, requested: str | None) -> str:
        """The requested model when the backend has it, else DEFAULT_MODEL, else the first
        one listed (the front end sends `mistral` when nothing is selected)."""
        if time.monotonic() - self._models_at > MODELS_TTL_S or not self._models:
            self._models = [m.name for m in await self.llm.list_models()]
            self._models_at = time.monotonic()
        names = self._models
        if requested:
            for n in names:
                if n == requested or n.split(":")[0] == requested:
                    return n
        if self.settings.default_model:
            return self.settings.default_model
        if not names:
            raise LLMError("The language model backend has no models")
        return names[0]

    async def answer(self, history: list[dict[str, Any]], text: str, model: str) -> tuple[str, str, str]:
        """(answer, reasoning, model used)."""
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        messages += [{"role": m["role"], "content": m.get("content") or ""} for m in history]
        messages.append({"role": "user", "content": text})
        result = await self.llm.chat(messages, model, max_tokens=self.settings.chat_max_tokens or None)
        return result.content.strip(), result.reasoning.strip(), result.model

    async def close(self) -> None:
        await self.llm.close()
