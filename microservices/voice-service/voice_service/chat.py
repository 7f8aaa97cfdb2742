"""mic-chat's conversation side: the LLM (harvis_common.llm), answering from the model alone
or from web sources (research mode, `research.py`). The chat history is written with
harvis_common.core_client (core-api's internal history API)."""

from __future__ import annotations

import logging
import re
from typing import Any

from harvis_common.llm import LLMClient, ModelPicker, client_from_settings

from .research import Findings
from .settings import Settings

log = logging.getLogger("voice.chat")

SYSTEM_PROMPT = (
    "You are Harvis, a helpful voice assistant. The user spoke to you; answer in a few clear "
    "sentences that read well aloud (no tables, no code blocks, no markdown)."
)
RESEARCH_PROMPT = (
    "You are Harvis, a helpful voice assistant. The user spoke to you and you searched the web. "
    "Answer using only the numbered web sources given, in a few clear sentences that read well "
    "aloud (no tables, no code blocks, no markdown). Cite each fact with its source number in "
    "square brackets, like [1]. If the sources do not answer the question, say so plainly; never "
    "invent facts or sources."
)
CONTEXT_MESSAGES = 20
_CITATION = re.compile(r"\s*\[[1-9]\d?\](?:\s*\[[1-9]\d?\])*")


def speakable(answer: str) -> str:
    """The answer as it is read aloud: `[n]` citations are for the eye, not the ear."""
    return _CITATION.sub("", answer).strip()


MODELS_TTL_S = 30.0


class Conversation:
    """Picks the model and asks the LLM."""

    def __init__(self, settings: Settings, llm: LLMClient | None = None) -> None:
        self.settings = settings
        self.llm = llm or client_from_settings(settings)
        self.picker = ModelPicker(self.llm, settings.default_model, MODELS_TTL_S)

    async def pick_model(self, requested: str | None) -> str:
        return (await self.picker.pick(requested))[0]

    async def answer(
        self, history: list[dict[str, Any]], text: str, model: str, findings: Findings | None = None
    ) -> tuple[str, str, str]:
        """(answer, reasoning, model used); from `findings`' sources when there are any."""
        if findings is not None and findings.context:
            system = RESEARCH_PROMPT
            question = (
                f"Question: {text}\n\nWeb sources:\n{findings.context}\n\n"
                "Answer the question from these sources, citing them as [n]."
            )
        else:
            system, question = SYSTEM_PROMPT, text
        messages = [{"role": "system", "content": system}]
        messages += [{"role": m["role"], "content": m.get("content") or ""} for m in history]
        messages.append({"role": "user", "content": question})
        result = await self.llm.chat(messages, model, max_tokens=self.settings.chat_max_tokens or None)
        return result.content.strip(), result.reasoning.strip(), result.model

    async def close(self) -> None:
        await self.llm.close()
