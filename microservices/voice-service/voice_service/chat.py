"""mic-chat's conversation side: the LLM (harvis_common.llm). The chat history is written
with harvis_common.history_client (core-api's internal history API)."""

from __future__ import annotations

import logging
from typing import Any

from harvis_common.llm import LLMClient, ModelPicker, client_from_settings

from .settings import Settings

log = logging.getLogger("voice.chat")

SYSTEM_PROMPT = (
    "You are Harvis, a helpful voice assistant. The user spoke to you; answer in a few clear "
    "sentences that read well aloud (no tables, no code blocks, no markdown)."
)
CONTEXT_MESSAGES = 20
MODELS_TTL_S = 30.0


class Conversation:
    """Picks the model and asks the LLM."""

    def __init__(self, settings: Settings, llm: LLMClient | None = None) -> None:
        self.settings = settings
        self.llm = llm or client_from_settings(settings)
        self.picker = ModelPicker(self.llm, settings.default_model, MODELS_TTL_S)

    async def pick_model(self, requested: str | None) -> str:
        return (await self.picker.pick(requested))[0]

    async def answer(self, history: list[dict[str, Any]], text: str, model: str) -> tuple[str, str, str]:
        """(answer, reasoning, model used)."""
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        messages += [{"role": m["role"], "content": m.get("content") or ""} for m in history]
        messages.append({"role": "user", "content": text})
        result = await self.llm.chat(messages, model, max_tokens=self.settings.chat_max_tokens or None)
        return result.content.strip(), result.reasoning.strip(), result.model

    async def close(self) -> None:
        await self.llm.close()
